// crypto: what tests compute themselves to act as a person would — the
// one-time codes of an authenticator app (RFC 4648 base32, RFC 4226 HOTP,
// RFC 6238 TOTP: SHA-1, 6 digits, 30-second steps) — and to look inside
// what Billow seals (shared/seal.c), as its notifier will.

import assert from 'node:assert/strict';
import { createDecipheriv, createHash, createHmac } from 'node:crypto';

import { ENCRYPTION_KEY } from './env.mjs';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export const PERIOD_S = 30;

// The bytes of a base32 text (unpadded; padding and case tolerated).
export function base32Decode(text) {
  let value = 0;
  let bits = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const v = BASE32.indexOf(c);
    assert.ok(v >= 0, `'${c}' is not a base32 character (in ${text})`);
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// The HOTP value of key (bytes) at counter, with digits digits and digest.
export function hotp(key, counter, { digits = 6, digest = 'sha1' } = {}) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(digest, key).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 10 ** digits).padStart(digits, '0');
}

// The 30-second step of a time in milliseconds.
export function stepAt(ms = Date.now()) {
  return Math.floor(ms / 1000 / PERIOD_S);
}

// The code of a base32 secret at a step (default: now).
export function totpCode(secret, step = stepAt()) {
  return hotp(base32Decode(secret), step);
}

// Opens a value sealed by shared/seal.c: "v1.<b64url nonce>.<b64url ct||tag>",
// AES-256-GCM under ENCRYPTION_KEY (hex) with the context as associated data.
export function unseal(sealed, context) {
  const m = /^v1\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]+)$/.exec(sealed);
  assert.ok(m, `not a sealed value: ${sealed}`);
  const nonce = Buffer.from(m[1], 'base64url');
  const body = Buffer.from(m[2], 'base64url');
  assert.equal(nonce.length, 12, 'a 96-bit nonce');
  assert.ok(body.length > 16, 'ciphertext and a 16-byte tag');
  const d = createDecipheriv('aes-256-gcm', Buffer.from(ENCRYPTION_KEY, 'hex'), nonce);
  d.setAAD(Buffer.from(context, 'utf8'));
  d.setAuthTag(body.subarray(body.length - 16));
  return Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]).toString('utf8');
}

// Lower-case hex SHA-256 of a string.
export function sha256(s) {
  return createHash('sha256').update(s).digest('hex');
}

// The stored hash of a recovery code (shared/totp.c totp_recovery_hash):
// HMAC-SHA256 of the code without its dash, in lower case, under the key
// the api derives from ENCRYPTION_KEY for recovery codes.
export function recoveryCodeHash(code) {
  const key = createHmac('sha256', Buffer.from(ENCRYPTION_KEY, 'hex')).update('billow recovery codes').digest();
  return createHmac('sha256', key).update(code.replace(/[-\s]/g, '').toLowerCase()).digest('hex');
}
