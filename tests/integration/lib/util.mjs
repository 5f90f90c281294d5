// util: ids in Billow's format, bounded polling, and small helpers the
// integration tests share.

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

// Crockford base32, the alphabet of Billow's ids (shared/ids.h).
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// A new id "<prefix>_" + 26 characters: 48 bits of milliseconds, then 80
// random bits, as shared/ids.c makes them.
export function newId(prefix, ms = Date.now()) {
  let out = '';
  let t = BigInt(ms);
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[Number(t & 31n)] + out;
    t >>= 5n;
  }
  const rnd = randomBytes(10);
  let r = 0n;
  for (const b of rnd) r = (r << 8n) | BigInt(b);
  let tail = '';
  for (let i = 0; i < 16; i++) {
    tail = CROCKFORD[Number(r & 31n)] + tail;
    r >>= 5n;
  }
  return `${prefix}_${out}${tail}`;
}

export const ID_RE = (prefix) => new RegExp(`^${prefix}_[0-9A-HJKMNP-TV-Z]{26}$`);

// A short random lowercase tag for names, slugs and metadata.
export function tag(prefix = 't') {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

// Calls fn until it returns a value other than undefined or false, or throws when
// timeoutMs passes; `what` names the awaited condition in the error, and
// describe() (optional) adds the last observed state.
export async function until(what, fn, { timeoutMs = 30000, intervalMs = 100, describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const v = await fn();
    // false counts as "not yet" too: a predicate written as a comparison
    // must not end the wait on its first false.
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      last = describe ? await describe() : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last seen: ${last}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

// Runs fn over items with at most `limit` calls in flight; results in order.
export async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function lane() {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

// RFC 3339 in whole seconds (the API's format), for ms since the epoch.
export function rfc3339(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
