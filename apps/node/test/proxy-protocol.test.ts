import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import {
  clientAddress,
  installProxyProtocol,
  MAX_HEADER_LENGTH,
  type ProxyProtocolOptions,
  parseProxyHeader,
  realAddress,
  realPort,
  V2_MAX_PAYLOAD,
} from '../src/proxy-protocol.js';

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function ipv6Bytes(addr: string): Buffer {
  // Enough for the test addresses: expand '::' and write eight groups.
  const [head = '', tail] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

interface V2Opts {
  verCmd?: number;
  fam?: number;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  tlvs?: Buffer;
  /** Override the length field. */
  len?: number;
  /** Raw address block instead of one built from src/dst. */
  addr?: Buffer;
}

/** Builds a v2 header; PROXY TCP over IPv4 by default. */
function v2(o: V2Opts = {}): Buffer {
  const fam = o.fam ?? 0x11;
  let addr = o.addr;
  if (!addr) {
    if (fam >> 4 === 1) {
      addr = Buffer.alloc(12);
      Buffer.from((o.src ?? '203.0.113.7').split('.').map(Number)).copy(addr, 0);
      Buffer.from((o.dst ?? '10.0.0.1').split('.').map(Number)).copy(addr, 4);
      addr.writeUInt16BE(o.sport ?? 5555, 8);
      addr.writeUInt16BE(o.dport ?? 80, 10);
    } else if (fam >> 4 === 2) {
      addr = Buffer.alloc(36);
      ipv6Bytes(o.src ?? '2001:db8::7').copy(addr, 0);
      ipv6Bytes(o.dst ?? '2001:db8::1').copy(addr, 16);
      addr.writeUInt16BE(o.sport ?? 5555, 32);
      addr.writeUInt16BE(o.dport ?? 443, 34);
    } else {
      addr = Buffer.alloc(0);
    }
  }
  const rest = Buffer.concat([addr, o.tlvs ?? Buffer.alloc(0)]);
  const head = Buffer.alloc(4);
  head[0] = o.verCmd ?? 0x21;
  head[1] = fam;
  head.writeUInt16BE(o.len ?? rest.length, 2);
  return Buffer.concat([SIG, head, rest]);
}

function tlv(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('parseProxyHeader v1', () => {
  it('parses TCP4 and reports the header length', () => {
    const line = 'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n';
    const r = parseProxyHeader(b(line + 'GET / HTTP/1.1\r\n'));
    expect(r).toEqual({
      kind: 'ok',
      length: line.length,
      version: 1,
      local: false,
      source: { address: '203.0.113.7', port: 5555, family: 'IPv4' },
    });
  });

  it('parses TCP6 and canonicalises the address', () => {
    const r = parseProxyHeader(b('PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::1 65535 0\r\n'));
    expect(r).toMatchObject({
      kind: 'ok',
      local: false,
      source: { address: '2001:db8::7', port: 65535, family: 'IPv6' },
    });
  });

  it('accepts UNKNOWN with or without addresses, without a source', () => {
    for (const line of [
      'PROXY UNKNOWN\r\n',
      'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n',
    ]) {
      const r = parseProxyHeader(b(line));
      expect(r).toEqual({ kind: 'ok', length: line.length, version: 1, local: false });
    }
  });

  it('rejects malformed lines', () => {
    const bad = [
      'PROXY TCP4 203.0.113.7 127.0.0.1 5555\r\n', // missing field
      'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80 9\r\n', // extra field
      'PROXY TCP4  203.0.113.7 127.0.0.1 5555 80\r\n', // double space
      'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80 \r\n', // trailing space
      'PROXY TCP5 203.0.113.7 127.0.0.1 5555 80\r\n', // protocol
      'PROXY tcp4 203.0.113.7 127.0.0.1 5555 80\r\n', // case
      'PROXY TCP4 256.0.113.7 127.0.0.1 5555 80\r\n', // octet > 255
      'PROXY TCP4 203.0.113 127.0.0.1 5555 80\r\n', // three octets
      'PROXY TCP4 203.0.113.07 127.0.0.1 5555 80\r\n', // leading zero
      'PROXY TCP4 ::1 127.0.0.1 5555 80\r\n', // v6 address on TCP4
      'PROXY TCP6 203.0.113.7 ::1 5555 80\r\n', // v4 address on TCP6
      'PROXY TCP6 fe80::1%eth0 ::1 5555 80\r\n', // zone id
      'PROXY TCP6 2001:db8:::7 ::1 5555 80\r\n', // bad v6
      'PROXY TCP4 203.0.113.7 127.0.0.1 65536 80\r\n', // port > 65535
      'PROXY TCP4 203.0.113.7 127.0.0.1 05555 80\r\n', // leading zero port
      'PROXY TCP4 203.0.113.7 127.0.0.1 -1 80\r\n', // sign
      'PROXY TCP4 203.0.113.7 127.0.0.1 5555 8o\r\n', // not a number
      'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\n', // bare LF
      'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\rX', // CR without LF
      'PROXY TCP4 203.0.113.7\t127.0.0.1 5555 80\r\n', // control character
      'PROXY \r\n',
      'PROXYTCP4 203.0.113.7 127.0.0.1 5555 80\r\n',
      'GET / HTTP/1.1\r\n',
      'Xhello',
    ];
    for (const line of bad) {
      const r = parseProxyHeader(b(line));
      expect(r.kind, JSON.stringify(line)).toBe('invalid');
    }
  });

  it('rejects a line longer than 107 bytes, even before its CRLF arrives', () => {
    const exact = 'PROXY UNKNOWN ' + 'x'.repeat(107 - 16) + '\r\n';
    expect(exact.length).toBe(107);
    expect(parseProxyHeader(b(exact))).toMatchObject({ kind: 'ok', length: 107 });
    const long = 'PROXY UNKNOWN ' + 'x'.repeat(107 - 15) + '\r\n';
    expect(parseProxyHeader(b(long))).toMatchObject({ kind: 'invalid' });
    // 107 bytes and still no CRLF: no valid header can follow.
    expect(parseProxyHeader(b('PROXY UNKNOWN ' + 'x'.repeat(93)))).toMatchObject({ kind: 'invalid' });
    expect(parseProxyHeader(b('PROXY UNKNOWN ' + 'x'.repeat(92)))).toEqual({ kind: 'incomplete' });
  });

  it('reports every proper prefix of a valid line as incomplete', () => {
    const line = 'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n';
    for (let i = 0; i < line.length; i++) {
      expect(parseProxyHeader(b(line.slice(0, i))), line.slice(0, i)).toEqual({ kind: 'incomplete' });
    }
  });

  it('rejects a bad prefix without waiting for more bytes', () => {
    expect(parseProxyHeader(b('PROXX'))).toMatchObject({ kind: 'invalid' });
    expect(parseProxyHeader(b('G'))).toMatchObject({ kind: 'invalid' });
  });
});

describe('parseProxyHeader v2', () => {
  it('parses PROXY over TCP/IPv4', () => {
    const h = v2({ src: '203.0.113.7', sport: 5555 });
    const r = parseProxyHeader(Buffer.concat([h, b('GET / HTTP/1.1\r\n')]));
    expect(r).toEqual({
      kind: 'ok',
      length: 16 + 12,
      version: 2,
      local: false,
      source: { address: '203.0.113.7', port: 5555, family: 'IPv4' },
    });
  });

  it('parses PROXY over TCP/IPv6', () => {
    const r = parseProxyHeader(v2({ fam: 0x21, src: '2001:db8::7', sport: 40000 }));
    expect(r).toEqual({
      kind: 'ok',
      length: 16 + 36,
      version: 2,
      local: false,
      source: { address: '2001:db8::7', port: 40000, family: 'IPv6' },
    });
  });

  it('parses LOCAL (health check) as local without a source, whatever the family', () => {
    expect(parseProxyHeader(v2({ verCmd: 0x20, fam: 0x00 }))).toEqual({
      kind: 'ok',
      length: 16,
      version: 2,
      local: true,
    });
    const withAddr = v2({ verCmd: 0x20, fam: 0x11 });
    expect(parseProxyHeader(withAddr)).toEqual({ kind: 'ok', length: 28, version: 2, local: true });
    // The spec says to ignore the family for LOCAL, even one we do not know.
    expect(parseProxyHeader(v2({ verCmd: 0x20, fam: 0xff, addr: Buffer.alloc(0) }))).toMatchObject({
      kind: 'ok',
      local: true,
    });
  });

  it('accepts UNSPEC, UDP and UNIX without a source', () => {
    for (const h of [
      v2({ fam: 0x00 }),
      v2({ fam: 0x12 }),
      v2({ fam: 0x22 }),
      v2({ fam: 0x31, addr: Buffer.alloc(216) }),
    ]) {
      const r = parseProxyHeader(h);
      expect(r).toEqual({ kind: 'ok', length: h.length, version: 2, local: false });
    }
  });

  it('skips TLVs and reports the full length', () => {
    const tlvs = Buffer.concat([
      tlv(0x01, b('h2')), // ALPN
      tlv(0xea, b('\x01vpce-0123456789abcdef')), // AWS VPC endpoint id
      tlv(0x04, Buffer.alloc(0)), // NOOP, empty
    ]);
    const h = v2({ tlvs, src: '198.51.100.9', sport: 1234 });
    const r = parseProxyHeader(Buffer.concat([h, b('rest')]));
    expect(r).toMatchObject({
      kind: 'ok',
      length: h.length,
      source: { address: '198.51.100.9', port: 1234, family: 'IPv4' },
    });
  });

  it('rejects TLVs that do not fit the header', () => {
    const truncated = Buffer.from([0x01, 0x00]); // 2 bytes: not even a TLV header
    expect(parseProxyHeader(v2({ tlvs: truncated }))).toMatchObject({ kind: 'invalid' });
    const overrun = Buffer.from([0x01, 0x00, 0x05, 0x61]); // says 5 bytes, has 1
    expect(parseProxyHeader(v2({ tlvs: overrun }))).toMatchObject({ kind: 'invalid' });
  });

  it('rejects a bad signature as soon as it diverges', () => {
    const h = v2();
    h[7] = 0x00;
    expect(parseProxyHeader(h)).toMatchObject({ kind: 'invalid' });
    expect(parseProxyHeader(h.subarray(0, 8))).toMatchObject({ kind: 'invalid' });
  });

  it('rejects bad versions, commands, families and transports', () => {
    expect(parseProxyHeader(v2({ verCmd: 0x11 }))).toMatchObject({ kind: 'invalid' }); // version 1
    expect(parseProxyHeader(v2({ verCmd: 0x31 }))).toMatchObject({ kind: 'invalid' }); // version 3
    expect(parseProxyHeader(v2({ verCmd: 0x31 }).subarray(0, 13))).toMatchObject({ kind: 'invalid' });
    expect(parseProxyHeader(v2({ verCmd: 0x22 }))).toMatchObject({ kind: 'invalid' }); // command 2
    expect(parseProxyHeader(v2({ fam: 0x41, addr: Buffer.alloc(12) }))).toMatchObject({ kind: 'invalid' });
    expect(parseProxyHeader(v2({ fam: 0x13, addr: Buffer.alloc(12) }))).toMatchObject({ kind: 'invalid' });
  });

  it('rejects a length field too short for the family or above the bound', () => {
    expect(parseProxyHeader(v2({ fam: 0x11, addr: Buffer.alloc(8) }))).toMatchObject({ kind: 'invalid' });
    expect(parseProxyHeader(v2({ fam: 0x21, addr: Buffer.alloc(12) }))).toMatchObject({ kind: 'invalid' });
    // Rejected from the fixed part alone, before the payload is buffered.
    const big = v2({ len: V2_MAX_PAYLOAD + 1 }).subarray(0, 16);
    expect(parseProxyHeader(big)).toMatchObject({ kind: 'invalid' });
    const atBound = v2({ tlvs: tlv(0x04, Buffer.alloc(V2_MAX_PAYLOAD - 12 - 3)) });
    expect(atBound.length).toBe(MAX_HEADER_LENGTH);
    expect(parseProxyHeader(atBound)).toMatchObject({ kind: 'ok', length: MAX_HEADER_LENGTH });
  });

  it('reports every proper prefix of a valid header as incomplete', () => {
    const h = v2({ fam: 0x21, tlvs: tlv(0x01, b('h2')) });
    for (let i = 0; i < h.length; i++) {
      expect(parseProxyHeader(h.subarray(0, i)), `prefix ${i}`).toEqual({ kind: 'incomplete' });
    }
  });
});

// ------------------------------------------------------------------------------------ sockets

const LINE = 'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n';
const GET = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

interface Started {
  server: http.Server;
  port: number;
  hits: number;
  errors: Error[];
}

/** An HTTP server that answers with the real address (or the TCP peer) and the body size. */
async function startServer(mode: ProxyProtocolOptions['mode'], timeoutMs = 1000): Promise<Started> {
  const started: Started = { server: http.createServer(), port: 0, hits: 0, errors: [] };
  const { server } = started;
  server.on('request', (req, res) => {
    started.hits++;
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
    });
    req.on('end', () => {
      const addr = realAddress(req.socket) ?? `peer:${req.socket.remoteAddress}`;
      res.end(`${addr} ${realPort(req.socket) ?? '-'} ${size}`);
    });
  });
  installProxyProtocol(server, { mode, timeoutMs, onError: (err) => started.errors.push(err) });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  started.port = (server.address() as AddressInfo).port;
  return started;
}

interface Exchange {
  data: string;
  /** ms from connect to close */
  elapsed: number;
}

/** Writes each part (optionally spaced out), then reads until the server closes. */
function exchange(port: number, parts: (string | Buffer)[], gapMs = 0, limitMs = 5000): Promise<Exchange> {
  const p = new Promise<Exchange>((resolve, reject) => {
    const start = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const got: Buffer[] = [];
    sock.on('data', (c: Buffer) => got.push(c));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // A server that drops us may reset the connection; that is a close too.
      if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e);
    });
    sock.on('close', () =>
      resolve({ data: Buffer.concat(got).toString('latin1'), elapsed: Date.now() - start }),
    );
    sock.on('connect', async () => {
      for (const part of parts) {
        if (sock.destroyed) return;
        sock.write(part);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
  return withTimeout(p, limitMs, 'the server to close the connection');
}

const body = (res: string): string => res.slice(res.indexOf('\r\n\r\n') + 4);

describe('installProxyProtocol: required', () => {
  it('takes the client address from a v1 header sent with the request', async () => {
    const { port } = await startServer('required');
    const res = await exchange(port, [LINE + GET]);
    expect(res.data).toMatch(/^HTTP\/1\.1 200/);
    expect(body(res.data)).toBe('203.0.113.7 5555 0');
  });

  it('handles the header and request split across many writes', async () => {
    const { port } = await startServer('required');
    const all = LINE + GET;
    // Cut inside "PROXY", inside the address, between CR and LF, and inside the request.
    const cuts = [3, 15, LINE.length - 1, LINE.length, LINE.length + 5, all.length];
    const parts: string[] = [];
    let from = 0;
    for (const to of cuts) {
      parts.push(all.slice(from, to));
      from = to;
    }
    const res = await exchange(port, parts, 20);
    expect(body(res.data)).toBe('203.0.113.7 5555 0');
  });

  it('takes the client address from a v2 header, also byte by byte', async () => {
    const { port } = await startServer('required');
    const h = v2({ fam: 0x21, src: '2001:db8::42', sport: 4242, tlvs: tlv(0x01, b('http/1.1')) });
    const res = await exchange(port, [Buffer.concat([h, b(GET)])]);
    expect(body(res.data)).toBe('2001:db8::42 4242 0');
    const bytes = [...h].map((x) => Buffer.from([x]));
    const slow = await exchange(port, [...bytes, GET], 2);
    expect(body(slow.data)).toBe('2001:db8::42 4242 0');
  });

  it('loses no bytes of a large body that follows the header in the same write', async () => {
    const { port } = await startServer('required');
    const payload = 'x'.repeat(300_000);
    const req = `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${payload.length}\r\n\r\n`;
    const res = await exchange(port, [LINE + req + payload]);
    expect(body(res.data)).toBe(`203.0.113.7 5555 ${payload.length}`);
  });

  it('keeps the address for every request on a keep-alive connection', async () => {
    const { port } = await startServer('required');
    const keep = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    const res = await exchange(port, [LINE + keep, keep, GET], 50);
    expect(res.data.match(/203\.0\.113\.7 5555 0/g)).toHaveLength(3);
  });

  it('lets a v2 LOCAL (health check) connection through with the peer address', async () => {
    const { port } = await startServer('required');
    const res = await exchange(port, [Buffer.concat([v2({ verCmd: 0x20, fam: 0x00 }), b(GET)])]);
    expect(body(res.data)).toBe('peer:127.0.0.1 - 0');
  });

  it('drops a client that sends no header once the timeout passes', async () => {
    const s = await startServer('required', 200);
    const res = await exchange(s.port, []);
    expect(res.data).toBe('');
    expect(res.elapsed).toBeGreaterThanOrEqual(150);
    expect(s.errors.map((e) => (e as { code?: string }).code)).toEqual(['PROXY_TIMEOUT']);
    expect(s.hits).toBe(0);
  });

  it('drops a client whose header never completes', async () => {
    const s = await startServer('required', 200);
    const res = await exchange(s.port, ['PROXY TCP4 203.0.113.7 ']);
    expect(res.data).toBe('');
    expect(s.errors.map((e) => (e as { code?: string }).code)).toEqual(['PROXY_TIMEOUT']);
  });

  it('drops invalid headers and plain HTTP without answering', async () => {
    const s = await startServer('required');
    const bad = [
      'PROXY TCP4 203.0.113.999 127.0.0.1 5555 80\r\n' + GET,
      GET,
      'PROXY UNKNOWN ' + 'x'.repeat(200),
      Buffer.concat([v2({ verCmd: 0x31 }), b(GET)]),
    ];
    for (const part of bad) {
      const res = await exchange(s.port, [part]);
      expect(res.data).toBe('');
      expect(res.elapsed).toBeLessThan(900); // dropped at once, not by the timeout
    }
    expect(s.errors.map((e) => (e as { code?: string }).code)).toEqual(Array(4).fill('PROXY_INVALID'));
    expect(s.hits).toBe(0);
  });

  it('carries the address through a WebSocket upgrade', async () => {
    const { server, port } = await startServer('required');
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.send(`${realAddress(req.socket)} ${clientAddress(req.socket)}`);
        ws.on('message', (m) => ws.send(`echo ${String(m)}`));
      });
    });
    const createConnection = (() => {
      const sock = net.connect(port, '127.0.0.1');
      // Written before the HTTP upgrade request, like the balancer would.
      sock.write(v2({ src: '198.51.100.23', sport: 6000 }));
      return sock;
    }) as unknown as typeof net.createConnection;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { createConnection });
    const messages: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      ws.on('error', reject);
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (m) => {
        messages.push(String(m));
        if (messages.length === 2) resolve();
      });
    });
    try {
      await withTimeout(done, 3000, 'WebSocket messages');
      expect(messages).toEqual(['198.51.100.23 198.51.100.23', 'echo hi']);
    } finally {
      ws.terminate();
      wss.close();
    }
  });

  it('refuses to install twice', async () => {
    const server = http.createServer();
    installProxyProtocol(server, { mode: 'required', timeoutMs: 1000 });
    expect(() => installProxyProtocol(server, { mode: 'required', timeoutMs: 1000 })).toThrow(/already/);
  });
});

describe('installProxyProtocol: off', () => {
  it('never trusts a PROXY line: the HTTP parser answers 400', async () => {
    const s = await startServer('off');
    const res = await exchange(s.port, [LINE + GET]);
    expect(res.data).toMatch(/^HTTP\/1\.1 400/);
    expect(res.data).not.toContain('203.0.113.7');
    expect(s.hits).toBe(0);
  });

  it('serves plain HTTP with the TCP peer address', async () => {
    const s = await startServer('off');
    const res = await exchange(s.port, [GET]);
    expect(body(res.data)).toBe('peer:127.0.0.1 - 0');
  });
});
