import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import net from 'node:net';

/** An HTTP upstream that answers every request with its name, and /readyz with 200 or 503 on demand. */
export interface HttpBackend {
  name: string;
  port: number;
  /** What /readyz answers: 200 when true, 503 when false. */
  ready: boolean;
  /** /readyz requests seen so far (the balancer's health checks). */
  checks: number;
  close(): Promise<void>;
}

export function httpBackend(name: string): Promise<HttpBackend> {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      if (req.url === '/readyz') {
        backend.checks++;
        res.writeHead(backend.ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(backend.ready ? 'ready' : 'draining');
        return;
      }
      // Content-Length, not chunked: requestOn reads one answer off a kept-alive connection.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
      res.end(name);
    });
    const backend: HttpBackend = {
      name,
      port: 0,
      ready: true,
      checks: 0,
      close: () =>
        new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
    };
    server.listen(0, '127.0.0.1', () => {
      backend.port = (server.address() as net.AddressInfo).port;
      resolve(backend);
    });
  });
}

const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');

/** What a raw upstream got first on one connection: the PROXY header (v1 line or v2 block), if any. */
export interface ProxiedConnection {
  /** The header bytes exactly as received. */
  header: Buffer;
  version: 1 | 2;
  /** v2 only: true for LOCAL (the balancer's own health check). */
  local: boolean;
}

/**
 * A raw TCP upstream that expects a PROXY header (v1 or v2) on every connection, records it and emits
 * 'proxied', then echoes `<name>:<data>`; a v2 LOCAL connection is a health check and gets
 * `HTTP/1.0 200 OK`.
 */
export interface ProxyBackend {
  name: string;
  port: number;
  /** Client connections (PROXY command), in order. */
  proxied: ProxiedConnection[];
  /** Health checks seen (v2 LOCAL). */
  checks: number;
  /** Connections that did not start with a valid PROXY header. */
  rejected: number;
  /**
   * Resolves with the first client connection (seen so far or to come) whose header matches
   * `match`, bounded by `timeoutMs`. (Balancers also pass on their own readiness probes.)
   */
  find(match: (c: ProxiedConnection) => boolean, timeoutMs?: number): Promise<ProxiedConnection>;
  close(): Promise<void>;
}

function splitHeader(buf: Buffer): { conn: ProxiedConnection; rest: Buffer } | 'incomplete' | 'invalid' {
  if (buf.length >= 12 && buf.subarray(0, 12).equals(V2_SIGNATURE)) {
    if (buf.length < 16) return 'incomplete';
    const length = 16 + buf.readUInt16BE(14);
    if (buf.length < length) return 'incomplete';
    const header = Buffer.from(buf.subarray(0, length));
    return { conn: { header, version: 2, local: (buf[12]! & 0x0f) === 0 }, rest: buf.subarray(length) };
  }
  if (buf.subarray(0, 6).toString('latin1') === 'PROXY ') {
    const end = buf.indexOf('\r\n');
    if (end < 0) return buf.length > 107 ? 'invalid' : 'incomplete';
    const header = Buffer.from(buf.subarray(0, end + 2));
    return { conn: { header, version: 1, local: false }, rest: buf.subarray(end + 2) };
  }
  const n = Math.min(buf.length, 12);
  const maybe =
    buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n)) ||
    'PROXY '.startsWith(buf.subarray(0, 6).toString('latin1'));
  return maybe ? 'incomplete' : 'invalid';
}

export function proxyBackend(name: string): Promise<ProxyBackend> {
  const events = new EventEmitter();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let conn: ProxiedConnection | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (conn) {
        socket.write(`${name}:${chunk}`);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      const split = splitHeader(buf);
      if (split === 'incomplete') return;
      if (split === 'invalid') {
        backend.rejected++;
        socket.destroy();
        return;
      }
      conn = split.conn;
      if (conn.local) {
        backend.checks++;
        socket.end('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      backend.proxied.push(conn);
      events.emit('proxied', conn);
      if (split.rest.length > 0) socket.write(`${name}:${split.rest}`);
    });
  });
  const backend: ProxyBackend = {
    name,
    port: 0,
    proxied: [],
    checks: 0,
    rejected: 0,
    find(match, timeoutMs = 5000) {
      const seen = backend.proxied.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('proxied', onConn);
          reject(new Error(`no matching PROXY header within ${timeoutMs} ms`));
        }, timeoutMs);
        const onConn = (c: ProxiedConnection) => {
          if (!match(c)) return;
          clearTimeout(timer);
          events.off('proxied', onConn);
          resolve(c);
        };
        events.on('proxied', onConn);
      });
    },
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      backend.port = (server.address() as net.AddressInfo).port;
      resolve(backend);
    });
  });
}

/** A connected TCP client from `localAddress` (default 127.0.0.1), bounded by `timeoutMs`. */
export async function connectFrom(
  port: number,
  localAddress = '127.0.0.1',
  timeoutMs = 5000,
): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect', { signal: AbortSignal.timeout(timeoutMs) });
  return socket;
}

/**
 * Sends one keep-alive HTTP request on an open connection and resolves with the body of the answer
 * (the backends answer with a short Content-Length body).
 */
export function requestOn(socket: net.Socket, urlPath = '/', timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no answer to GET ${urlPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const sep = text.indexOf('\r\n\r\n');
      if (sep < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, sep))?.[1] ?? Number.NaN);
      if (Number.isNaN(length) || text.length < sep + 4 + length) return;
      cleanup();
      resolve(text.slice(sep + 4, sep + 4 + length));
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`connection closed before the answer to GET ${urlPath}`));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: herald\r\nConnection: keep-alive\r\n\r\n`);
  });
}

/** Loopback source address number i (127.0.0.2 ...), so the balancer's address hash spreads clients. */
export function loopback(i: number): string {
  return `127.0.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}
