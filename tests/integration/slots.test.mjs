// The test files' slots (lib/env.mjs slot()) must differ, or two files
// would share an api port and a Redis database and flush each other's jobs.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const DIR = path.dirname(fileURLToPath(import.meta.url));

it('every test file takes its own slot in 1..47', () => {
  const owners = new Map();
  for (const f of fs.readdirSync(DIR).filter((n) => n.endsWith('.test.mjs') && n !== 'slots.test.mjs').sort()) {
    const m = [...fs.readFileSync(path.join(DIR, f), 'utf8').matchAll(/\bslot\((\d+)\)/g)].map((x) => Number(x[1]));
    assert.equal(m.length, 1, `${f} takes exactly one slot`);
    const [n] = m;
    assert.ok(n >= 1 && n <= 47, `${f}: slot ${n} is in 1..47`);
    assert.ok(!owners.has(n), `${f} and ${owners.get(n)} both take slot ${n}`);
    owners.set(n, f);
  }
  assert.ok(owners.size > 0, 'test files were found');
});
