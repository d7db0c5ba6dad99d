/**
 * The Socket.IO peer: one server process of several sharing a Redis through
 * `@socket.io/redis-adapter`. WebSocket transport only, no per-message deflate.
 * Clients join the rooms named in their connect payload (`40{"rooms":[..]}`).
 * `POST /emit?room=R` emits the JSON body as event `m` to room R (to everyone without `room`).
 * Env: PORT, HOST (default 127.0.0.1), REDIS_URL.
 */
import http from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const pub = new Redis(redisUrl, { maxRetriesPerRequest: null });
const sub = pub.duplicate();

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  if (req.method !== 'POST' || url.pathname !== '/emit') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let data: unknown;
    try {
      data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end('{"code":"bad_json"}');
      return;
    }
    const room = url.searchParams.get('room');
    if (room) io.to(room).emit('m', data);
    else io.emit('m', data);
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"emitted"}');
  });
});

const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  adapter: createAdapter(pub, sub),
});

io.on('connection', (socket) => {
  const rooms = (socket.handshake.auth as { rooms?: unknown }).rooms;
  if (Array.isArray(rooms)) for (const r of rooms) if (typeof r === 'string') socket.join(r);
});

server.listen(port, host, () => {
  const addr = server.address();
  console.log(`socket.io server listening on ${typeof addr === 'object' && addr ? addr.port : port}`);
});

const stop = () => {
  io.close();
  pub.disconnect();
  sub.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
