// Hostile and broken requests: garbage, oversized heads and bodies, too
// many headers, slow heads and bodies, bad JSON, the wrong media type. Each
// gets its own 4xx (closing the connection where api/http_conn.h says so),
// and the server goes on answering /healthz.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { DEMO_API_KEY, slot } from './lib/env.mjs';
import { assertError, checkResponse, client } from './lib/http.mjs';
import { exchange, send, writeAll } from './lib/raw.mjs';
import { Stack } from './lib/stack.mjs';
import { sleep } from './lib/util.mjs';

const S = slot(5);
const stack = new Stack('http_limits', S);
let api;
let port;

// Small so that the slow-client tests are quick; every other request is
// sent at once and is not affected.
const HEADER_TIMEOUT_MS = 500;
const BODY_TIMEOUT_MS = 500;

before(async () => {
  await stack.flushRedis();
  const p = await stack.startApi({ HEADER_TIMEOUT_MS, BODY_TIMEOUT_MS });
  port = p.port;
  api = client(p);
});

after(async () => {
  await stack.stopAll();
});

// The server still answers: GET /healthz → 200 {"status":"ok"}.
async function assertHealthy() {
  const res = await api.get('/healthz');
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'ok' });
}

// Asserts a raw exchange got `status` with error `code`, then the server
// closed the connection. route: [method, template] of the documented
// operation the request reached, or null for errors before routing.
function assertRawError(r, status, code, route) {
  assert.ok(r.response, `a response (got ${JSON.stringify(r.raw.toString('latin1').slice(0, 300))}, error ${r.error?.code})`);
  const res = r.response;
  assert.equal(res.status, status, res.text);
  if (route) checkResponse(route[0], route[1], res, true);
  else checkResponse('-', 'before routing', res, 'error');
  assert.equal(res.json?.error?.code, code, res.text);
  assert.ok(r.closed, 'the server closed the connection');
}

const AUTH = `Authorization: Bearer ${DEMO_API_KEY}\r\n`;

describe('malformed, oversized and slow requests', () => {
  it('garbage bytes are 400 malformed_request and the connection closes', async () => {
    const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]), Buffer.from(' \x01\x02 nonsense\r\n\r\n', 'latin1')]);
    assertRawError(await send(port, garbage), 400, 'malformed_request', null);
    await assertHealthy();
  });

  it('a request line that is not HTTP is 400 malformed_request', async () => {
    assertRawError(await send(port, 'HELLO there\r\n\r\n'), 400, 'malformed_request', null);
    await assertHealthy();
  });

  it('a 17 KiB header is 431 headers_too_large and the connection closes', async () => {
    const req = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`;
    assertRawError(await send(port, req), 431, 'headers_too_large', ['GET', '/healthz']);
    await assertHealthy();
  });

  it('70 headers are 431 headers_too_large and the connection closes', async () => {
    let req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 70; i++) req += `X-H${i}: v\r\n`;
    assertRawError(await send(port, `${req}\r\n`), 431, 'headers_too_large', ['GET', '/healthz']);
    await assertHealthy();
  });

  it('64 headers are still accepted', async () => {
    let req = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n';
    for (let i = 0; i < 62; i++) req += `X-H${i}: v\r\n`;
    const r = await send(port, `${req}\r\n`);
    assert.equal(r.response?.status, 200, r.raw.toString('latin1').slice(0, 300));
    checkResponse('GET', '/healthz', r.response);
  });

  it('Content-Length of 2 MiB is 413 body_too_large before the body is sent', async () => {
    const req = `POST /v1/customers HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`;
    assertRawError(await send(port, req), 413, 'body_too_large', ['POST', '/v1/customers']);
    await assertHealthy();
  });

  it('a chunked body growing past 1 MiB is 413 body_too_large', async () => {
    const head = `POST /v1/customers HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const chunk = `10000\r\n${'a'.repeat(0x10000)}\r\n`;
    const r = await exchange(port, async (sock, state) => {
      await writeAll(sock, head);
      // 20 chunks of 64 KiB: 1.25 MiB; stop as soon as the server answers.
      for (let i = 0; i < 20 && !state.received && !state.closed; i++) await writeAll(sock, chunk);
    });
    assertRawError(r, 413, 'body_too_large', ['POST', '/v1/customers']);
    await assertHealthy();
  });

  it('a head trickled byte by byte is 408 request_timeout after HEADER_TIMEOUT_MS', async () => {
    const r = await exchange(port, async (sock, state) => {
      await writeAll(sock, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      // One byte every 100 ms, far longer in total than the head may take.
      for (let i = 0; i < 100 && !state.received && !state.closed; i++) {
        await sleep(100);
        await writeAll(sock, 'a');
      }
    });
    assertRawError(r, 408, 'request_timeout', ['GET', '/healthz']);
    await assertHealthy();
  });

  it('a body that stops arriving is 408 request_timeout after BODY_TIMEOUT_MS', async () => {
    const req = `POST /v1/customers HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":`;
    assertRawError(await send(port, req), 408, 'request_timeout', ['POST', '/v1/customers']);
    await assertHealthy();
  });

  it('paths and query names that are not UTF-8 are quoted in valid JSON, and the server lives', async () => {
    // http-parser passes any byte above 0x7f through a request target, and
    // error messages quote the path: a JSON string must still be UTF-8.
    const head = (line) => Buffer.concat([Buffer.from(line, 'latin1'), Buffer.from(` HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\nContent-Length: 0\r\n\r\n`)]);
    const cases = [
      [head('GET /\xff'), 404, 'route_not_found', '/\ufffd'],
      // 600 bytes of é: the message is cut at 512 bytes inside a character.
      [Buffer.concat([Buffer.from('GET /'), Buffer.from('é'.repeat(300)), head('').subarray(0)]), 404, 'route_not_found', 'éé'],
      [head('DELETE /v1/customers/\xff'), 405, 'method_not_allowed', '/v1/customers/\ufffd'],
      [head('POST /webhooks/stripe/\xff\xfe'), 404, 'resource_missing', '\ufffd\ufffd'],
      [head('GET /v1/customers?\xff=1'), 400, 'parameter_unknown', '\ufffd'],
      // A value reaches Postgres, which refuses text that is not UTF-8.
      [head('GET /v1/customers?email=%FF'), 400, 'parameter_invalid', 'email'],
      [head('GET /v1/customers?email=\xff'), 400, 'parameter_invalid', 'email'],
    ];
    for (const [req, status, code, quoted] of cases) {
      const r = await send(port, req);
      assert.ok(r.response, `a response to ${JSON.stringify(req.toString('latin1').slice(0, 40))}`);
      const res = r.response;
      assert.equal(res.status, status, res.text);
      assert.equal(res.json?.error?.code, code, res.text);
      // The body is the UTF-8 that JSON requires: it decodes and re-encodes unchanged.
      const body = r.raw.subarray(r.raw.indexOf('\r\n\r\n') + 4);
      assert.ok(Buffer.from(body.toString('utf8'), 'utf8').equals(body), 'the body is valid UTF-8');
      const said = `${res.json.error.message} ${res.json.error.param ?? ''}`;
      assert.ok(said.includes(quoted), `${said} quotes ${quoted}`);
      assert.ok(!said.includes('\ufffd') || quoted.includes('\ufffd'), `${said}: a character cut at the end is dropped, not replaced`);
    }
    await assertHealthy();
  });

  it('pipelined requests on one connection are answered in order', async () => {
    const one = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const last = 'GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const r = await send(port, one + one + last);
    assert.equal(r.responses.length, 3, r.raw.toString('latin1'));
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 200]);
    checkResponse('GET', '/healthz', r.responses[0]);
    checkResponse('GET', '/healthz', r.responses[1]);
    checkResponse('GET', '/readyz', r.responses[2]);
    assert.equal(r.responses[2].json.status, 'ready');
  });

  it('a body that is not JSON is 400 invalid_json with line, column and position', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, body: '{"email":', headers: { 'Content-Type': 'application/json' } });
    assertError(res, 400, 'invalid_json', { type: 'invalid_request_error' });
    // The contract asks for the place of the error: line, column and position.
    assert.match(res.json.error.message, /line 1 column \d+ \(?position \d+\)?/);
    await assertHealthy();
  });

  it('a JSON body that is not an object is 400', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, body: '[1,2]', headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.type, 'invalid_request_error');
  });

  it('a text/plain body is 415 unsupported_media_type', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, body: 'email=a@example.com', headers: { 'Content-Type': 'text/plain' } });
    assertError(res, 415, 'unsupported_media_type', { type: 'invalid_request_error' });
    await assertHealthy();
  });
});
