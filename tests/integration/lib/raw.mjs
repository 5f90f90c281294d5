// raw: HTTP over a bare TCP socket, for requests fetch will not send
// (garbage, oversized heads, lying Content-Length, trickled bytes).
//
// exchange() writes what it is given, reads until the server closes the
// connection (or a deadline passes) and parses the first response; it
// reports whether the server closed the connection, which the limits in
// api/http_conn.h promise after every such error.

import net from 'node:net';

// How long to wait for the server to answer and close, by default.
const DEFAULT_TIMEOUT_MS = 15000;

// Parses the first HTTP response in buf: {status, headers, text, json, rest}.
export function parseResponse(buf) {
  const sep = buf.indexOf('\r\n\r\n');
  if (sep < 0) return null;
  const head = buf.subarray(0, sep).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!m) return null;
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const len = Number(headers['content-length'] ?? 0);
  const bodyBuf = buf.subarray(sep + 4, sep + 4 + len);
  if (bodyBuf.length < len) return null;
  const text = bodyBuf.toString('utf8');
  let json;
  if ((headers['content-type'] || '').startsWith('application/json')) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: Number(m[1]), headers, text, json, rest: buf.subarray(sep + 4 + len) };
}

// Connects to 127.0.0.1:port and runs write(sock, state), an async function
// that sends the request (state.received tells it whether bytes came back,
// state.closed whether the connection ended). Resolves with {response,
// responses, closed, error} once the server closes or timeoutMs passes.
export function exchange(port, write, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    const state = { received: false, closed: false };
    const sock = net.connect({ host: '127.0.0.1', port });
    let error = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      const responses = [];
      let rest = buf;
      for (;;) {
        const r = parseResponse(rest);
        if (!r) break;
        responses.push(r);
        rest = r.rest;
      }
      resolve({ response: responses[0] ?? null, responses, closed: state.closed, error, raw: buf });
    };
    const timer = setTimeout(() => {
      finish();
      sock.destroy();
    }, timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      state.received = true;
    });
    sock.on('error', (e) => {
      error = e;
    });
    sock.on('close', () => {
      state.closed = true;
      finish();
    });
    sock.on('connect', () => {
      write(sock, state).catch((e) => {
        error ??= e;
      });
    });
  });
}

// Writes data and waits until it is handed to the kernel (or the socket fails).
export function writeAll(sock, data) {
  return new Promise((resolve) => {
    if (sock.destroyed) {
      resolve();
      return;
    }
    sock.write(data, () => resolve());
  });
}

// Sends data at once.
export function send(port, data, opts) {
  return exchange(port, async (sock) => {
    await writeAll(sock, data);
  }, opts);
}
