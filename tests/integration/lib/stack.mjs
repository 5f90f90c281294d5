// stack: the api and workers of one test file, as child processes.
//
// Every process gets its environment explicitly (nothing leaks in from the
// test runner but PATH and the sanitizer options), writes stdout and stderr
// to its own file under $ROOT/.run/test/ for debugging, and is stopped with
// SIGTERM and required to exit 0: an AddressSanitizer or leak report makes
// the exit status non-zero, and that is a failure worth catching. A process
// that was killed on purpose (kill9, a fault point) is exempt from the exit
// status check, but its log is still searched for sanitizer reports.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {
  BILLOW_BUILD,
  DATABASE_READ_URL,
  DATABASE_URL,
  LOG_DIR,
  PLATFORM_ADMIN_TOKEN,
  ROOT,
} from './env.mjs';
import { client } from './http.mjs';
import { redis } from './redis.mjs';
import { until } from './util.mjs';

// The Stripe fake of a file listens on its api port + this.
export const STRIPE_FAKE_OFFSET = 200;

// How long a process may take to stop after SIGTERM (a worker finishes its
// batch, the api drains in-flight requests) before the test fails.
const STOP_TIMEOUT_MS = 30000;
// How long the api may take to answer /readyz 200 after start.
const READY_TIMEOUT_MS = 30000;
// Lines of a process log quoted in a failure message.
const LOG_TAIL_LINES = 60;

// Lines that only a sanitizer writes.
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |SUMMARY: UndefinedBehaviorSanitizer/;

// Variables passed through from the test runner to every process.
const PASSTHROUGH = ['PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'TZ', 'LANG', 'LC_ALL', 'ENCRYPTION_KEY'];

const live = new Set();
// Children must not outlive a test file that crashed or timed out.
process.on('exit', () => {
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

function tail(file) {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    return lines.slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no log)';
  }
}

// One child process: api or worker.
class Proc {
  constructor(name, cmd, args, env, logFile) {
    this.name = name;
    this.logFile = logFile;
    this.killed = false;
    this.termSent = false;
    this.exit = null; // {code, signal} once exited.
    const fd = fs.openSync(logFile, 'a');
    this.child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.pid = this.child.pid;
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        resolve(this.exit);
      });
      this.child.on('error', (err) => {
        this.exit = { code: null, signal: null, error: err };
        live.delete(this);
        resolve(this.exit);
      });
    });
  }

  get running() {
    return this.exit === null;
  }

  describe() {
    return `${this.name} (pid ${this.pid}, log ${this.logFile})`;
  }

  // Whether the process runs or how it ended, and the end of its log.
  statusReport() {
    const how = this.running ? 'is running' : `exited (${JSON.stringify(this.exit)})`;
    return `${this.describe()} ${how}:\n${tail(this.logFile)}`;
  }

  // Resolves with {code, signal} when the process exits, or fails after timeoutMs.
  async waitExit(timeoutMs = STOP_TIMEOUT_MS) {
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    assert.ok(r, `${this.describe()} did not exit within ${timeoutMs} ms\n${tail(this.logFile)}`);
    return r;
  }

  // Fails when the log holds a sanitizer report.
  assertNoSanitizerReport() {
    let text = '';
    try {
      text = fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return;
    }
    assert.ok(!SANITIZER_RE.test(text), `${this.describe()} logged a sanitizer report:\n${tail(this.logFile)}`);
  }

  // Sends SIGTERM once, without waiting (a second SIGTERM may rightly mean
  // "stop now" to a process that is draining).
  term() {
    if (this.running && !this.termSent) {
      this.termSent = true;
      this.child.kill('SIGTERM');
    }
  }

  // SIGTERM (unless term() sent it), then requires exit status 0 within
  // STOP_TIMEOUT_MS (SIGKILL and fail otherwise). A process that already
  // died fails here too.
  async stop() {
    if (this.running) {
      this.term();
      let timer;
      const r = await Promise.race([
        this.exited,
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!r) {
        this.child.kill('SIGKILL');
        await this.exited;
        assert.fail(`${this.describe()} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n${tail(this.logFile)}`);
      }
    }
    this.assertCleanExit();
  }

  // Requires the exit that happened to be status 0 with no sanitizer report.
  assertCleanExit() {
    assert.ok(this.exit, `${this.describe()} is still running`);
    const { code, signal, error } = this.exit;
    assert.ok(
      code === 0 && signal === null && !error,
      `${this.describe()} exited with ${error ? error.message : signal ? `signal ${signal}` : `status ${code}`}, not 0\n${tail(this.logFile)}`,
    );
    this.assertNoSanitizerReport();
  }

  // SIGKILL and wait for the exit: a crash, on purpose.
  async kill9() {
    this.killed = true;
    if (this.running) this.child.kill('SIGKILL');
    const r = await this.exited;
    assert.equal(r.signal, 'SIGKILL', `${this.describe()} ended by ${r.signal ?? `status ${r.code}`} before SIGKILL`);
    return r;
  }

  // Marks a process that is expected to die by itself (a fault point).
  expectDeath() {
    this.killed = true;
  }
}

// The processes of one test file, sharing its slot (lib/env.mjs slot()).
export class Stack {
  // file: short name for log files ("jobs_flow"); s: the file's slot.
  constructor(file, s) {
    this.file = file;
    this.slot = s;
    this.procs = [];
    this.seq = 0;
    fs.mkdirSync(LOG_DIR, { recursive: true });
  }

  // Empties this file's Redis database (call once before starting anything).
  async flushRedis() {
    await redis(this.slot.redisDb, 'FLUSHDB');
  }

  baseEnv(extra) {
    const env = {};
    for (const k of PASSTHROUGH) if (process.env[k] !== undefined) env[k] = process.env[k];
    Object.assign(env, {
      DATABASE_URL,
      DATABASE_READ_URL,
      REDIS_URL: this.slot.redisUrl,
      PLATFORM_ADMIN_TOKEN,
      // The file's own Stripe fake (lib/payments.mjs), never Stripe: a
      // test must not reach the network, and a file without a fake
      // running gets "connection refused", a passing fault.
      STRIPE_API_BASE: `http://127.0.0.1:${this.slot.port + STRIPE_FAKE_OFFSET}`,
    });
    for (const [k, v] of Object.entries(extra || {})) {
      if (v === undefined) delete env[k];
      else env[k] = String(v);
    }
    return env;
  }

  spawn(name, cmd, args, env) {
    this.seq += 1;
    const logFile = path.join(LOG_DIR, `${this.file}-${String(this.seq).padStart(2, '0')}-${name}.log`);
    fs.writeFileSync(logFile, `# ${cmd} ${args.join(' ')}\n# env: ${Object.keys(env).sort().join(' ')}\n`);
    const p = new Proc(name, cmd, args, env, logFile);
    this.procs.push(p);
    return p;
  }

  // Starts billow-api on the slot's port (or opts.port) and waits until
  // /readyz answers 200. env overrides settings (HEADER_TIMEOUT_MS…).
  async startApi(env = {}, { port = this.slot.port, waitReady = true } = {}) {
    const p = this.spawn('api', path.join(BILLOW_BUILD, 'billow-api'), [], this.baseEnv({ HOST: '127.0.0.1', PORT: port, ...env }));
    p.port = port;
    p.url = `http://127.0.0.1:${port}`;
    if (waitReady) await this.waitReady(p);
    return p;
  }

  // Waits until the api p answers GET /readyz with 200 (each answer on the
  // way, 503 included, is checked against the contract).
  async waitReady(p) {
    const api = client(p);
    await until(
      `${p.describe()} to answer /readyz 200`,
      async () => {
        assert.ok(p.running, `${p.describe()} exited during start-up: ${JSON.stringify(p.exit)}\n${tail(p.logFile)}`);
        try {
          const r = await api.get('/readyz', { timeoutMs: 2000 });
          return r.status === 200 ? true : undefined;
        } catch (e) {
          if (e.network) return undefined;
          throw e;
        }
      },
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 50, describe: () => tail(p.logFile) },
    );
  }

  // The product as ./scripts/up runs it, for this file: an empty Redis
  // database, the api (apiEnv overrides its settings) and one worker of
  // every kind the Procfile runs, so a kind added there is started here
  // too. Returns the api process.
  async startAll(apiEnv = {}) {
    await this.flushRedis();
    const procfile = fs.readFileSync(path.join(ROOT, 'Procfile'), 'utf8');
    const kinds = [...procfile.matchAll(/billow-worker\s+([a-z]+)/g)].map((m) => m[1]);
    assert.ok(kinds.length > 0, 'the Procfile names worker kinds');
    const api = await this.startApi(apiEnv);
    for (const kind of kinds) this.startWorker(kind);
    return api;
  }

  // Starts `billow-worker kind`; env overrides settings (WORKER_BATCH,
  // BILLOW_FAULTS…). Workers have no readiness probe: tests wait for the
  // effects they expect, with deadlines.
  startWorker(kind, env = {}) {
    return this.spawn(`worker-${kind}`, path.join(BILLOW_BUILD, 'billow-worker'), [kind], this.baseEnv({ WORKER_BLOCK_MS: 500, ...env }));
  }

  // Stops every worker still running (SIGTERM, exit 0 required), so the
  // next test starts with none.
  async stopWorkers() {
    for (const p of this.procs) {
      if (p.name.startsWith('worker') && p.running && !p.killed) await p.stop();
    }
  }

  // Stops every process still running (SIGTERM, exit 0 required) and checks
  // every log for sanitizer reports; reports all failures together.
  async stopAll() {
    const failures = [];
    for (const p of this.procs) {
      try {
        if (p.killed) {
          if (p.running) await p.kill9();
          p.assertNoSanitizerReport();
        } else {
          await p.stop();
        }
      } catch (e) {
        failures.push(e.message);
      }
    }
    this.procs = [];
    if (failures.length) assert.fail(failures.join('\n\n'));
  }
}

