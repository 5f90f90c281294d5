// redis: redis-cli against the test Redis, in one file's own database.

import { execFile } from 'node:child_process';

import { REDIS_PORT } from './env.mjs';

// Runs one command in database db; resolves with its raw output lines
// (redis-cli prints one element per line when not on a terminal).
export function redis(db, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(REDIS_PORT), '-n', String(db), ...args.map(String)],
      { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`redis-cli ${args[0]} failed: ${stderr.trim() || err.message}`));
          return;
        }
        // redis-cli reports command errors on stdout with exit status 0.
        if (/^(ERR|WRONGTYPE|NOSCRIPT|NOGROUP) /.test(stdout)) {
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
