// redis: redis-cli against the test Redis, in one file's own database.

import { execFile } from 'node:child_process';

import { REDIS_PORT, REDIS_URL } from './env.mjs';

// The test Redis's password (the default user's, in REDIS_URL), handed to
// redis-cli through its environment, never its command line.
const AUTH = decodeURIComponent(new URL(REDIS_URL).password);
const ENV = AUTH ? { ...process.env, REDISCLI_AUTH: AUTH } : process.env;

// Runs one command in database db; resolves with its raw output lines
// (redis-cli prints one element per line when not on a terminal).
export function redis(db, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(REDIS_PORT), '-n', String(db), ...args.map(String)],
      { maxBuffer: 64 * 1024 * 1024, env: ENV }, (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`redis-cli ${args[0]} failed: ${stderr.trim() || err.message}`));
          return;
        }
        // redis-cli reports command errors on stdout with exit status 0.
        if (/^(ERR|WRONGTYPE|NOSCRIPT|NOGROUP|NOAUTH|WRONGPASS) /.test(stdout)) {
          reject(new Error(`redis-cli ${args.join(' ').slice(0, 200)}: ${stdout.trim()}`));
          return;
        }
        resolve(stdout.replace(/\n$/, '').split('\n'));
      });
  });
}

// The single line a command answers (a string, an integer as text).
export async function redisValue(db, ...args) {
  return (await redis(db, ...args))[0];
}

// Field/value pairs of HGETALL as an object.
export async function hgetall(db, key) {
  const lines = await redis(db, 'HGETALL', key);
  const out = {};
  for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = lines[i + 1];
  return out;
}

// Consumers of the `workers` group of stream (jobs:<kind>) in database db:
// [{name, pending}], [] when the stream or group does not exist yet.
export async function streamConsumers(db, stream) {
  let lines;
  try {
    lines = await redis(db, 'XINFO', 'CONSUMERS', stream, 'workers');
  } catch {
    return [];
  }
  const out = [];
  let cur = null;
  for (let i = 0; i + 1 < lines.length; i += 2) {
    if (lines[i] === 'name') {
      cur = { name: lines[i + 1], pending: 0 };
      out.push(cur);
    } else if (lines[i] === 'pending' && cur) {
      cur.pending = Number(lines[i + 1]);
    }
  }
  return out;
}

// Entries of stream delivered to the worker with process id pid and not yet
// acked: those of its consumer, named host-pid-random (0 before the worker
// has read anything; never another worker's).
export async function pendingOf(db, stream, pid) {
  const cs = await streamConsumers(db, stream);
  return cs.filter((c) => c.name.includes(`-${pid}-`)).reduce((a, c) => a + c.pending, 0);
}

// Entries of stream delivered and not yet acked, over all its consumers.
export async function streamPending(db, stream) {
  try {
    return Number(await redisValue(db, 'XPENDING', stream, 'workers'));
  } catch {
    return 0;
  }
}
