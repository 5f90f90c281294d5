// db: SQL against the test Postgres through psql.
//
// superuser() runs as postgres over the private socket (it bypasses
// row-level security: for counting rows and for set-up and "fix" steps);
// asRole() connects with a service's own URL (billow_api, billow_worker) to
// see exactly what that role may see. Queries go in on standard input, so
// long statements (a thousand ids) need no command-line room.

import { execFile, spawn } from 'node:child_process';

import { BILLOW_PG_SOCK, PG_PORT } from './env.mjs';

function run(cmd, args, sql) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, cwd: '/' }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`psql failed (${err.code ?? err.signal}): ${stderr.trim()}\nSQL: ${sql.slice(0, 500)}`));
        return;
      }
      resolve(stdout);
    });
    child.stdin.end(sql);
  });
}

function rows(stdout) {
  const text = stdout.replace(/\n$/, '');
  return text === '' ? [] : text.split('\n').map((line) => line.split('|'));
}

const PSQL_FLAGS = ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-f', '-'];

// Rows of the last statement of sql (as arrays of text cells), as the superuser.
export async function superuser(sql) {
  const out = await run('runuser', ['-u', 'postgres', '--', 'psql', '-h', BILLOW_PG_SOCK, '-p', PG_PORT, '-d', 'billow', ...PSQL_FLAGS], sql);
  return rows(out);
}

// The single value of a one-row, one-column query, as the superuser.
export async function superValue(sql) {
  const r = await superuser(sql);
  if (r.length !== 1 || r[0].length !== 1) throw new Error(`expected one value from: ${sql}\ngot: ${JSON.stringify(r)}`);
  return r[0][0];
}

// Rows of sql run by psql connected with url (a role's own URL).
export async function asRole(url, sql) {
  return rows(await run('psql', [url, ...PSQL_FLAGS], sql));
}

// A SQL string literal.
export function lit(s) {
  return `'${String(s).replaceAll("'", "''")}'`;
}

// Opens a superuser transaction that runs `lockSql` (e.g. LOCK TABLE …) and
// keeps it open until release() commits it: a way to hold workers still in
// the middle of a batch. Resolves once the lock is held.
export async function holdLock(lockSql) {
  const child = spawn('runuser', ['-u', 'postgres', '--', 'psql', '-h', BILLOW_PG_SOCK, '-p', PG_PORT, '-d', 'billow', '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: '/', // postgres may not enter the checkout's folders
  });
  let out = '';
  let err = '';
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const held = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('lock-held')) resolve();
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    exited.then((code) => reject(new Error(`psql holding ${lockSql} exited ${code}: ${err}`)));
  });
  child.stdin.write(`BEGIN;\n${lockSql};\n\\echo lock-held\n`);
  await held;
  return {
    async release() {
      child.stdin.end('COMMIT;\n');
      const code = await exited;
      if (code !== 0) throw new Error(`psql holding ${lockSql} exited ${code}: ${err}`);
    },
  };
}
