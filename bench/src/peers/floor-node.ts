/**
 * The floor of Herald's architecture, push side (issue #14): a bare `ws` server (as ws-floor-server.ts)
 * that also holds one Redis pub/sub subscription per connected device (`d:<device>`, taken at
 * `hello`, before `welcome`) and writes each message of it to the device as a Herald
 * `notification` frame. The device's id is read from its token without checking it; acks are read
 * and parsed, then dropped (no cursor, no counts). With floor-api.ts it is the `herald-floor` system.
 * Env: PORT, HOST (default 127.0.0.1), REDIS_URL.
 */
import { Redis } from 'ioredis';
import { type WebSocket, WebSocketServer } from 'ws';
import { exitOnSignal, healthServer } from './bare.js';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const node = `floor-${process.pid}`;
const sub = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });

interface Device {
  ws: WebSocket;
  seq: number;
}
const devices = new Map<string, Device>();

sub.on('message', (channel: string, message: string) => {
  const d = devices.get(channel.slice(2));
  if (!d) return;
  d.seq++;
  d.ws.send(`{"type":"notification","stream":"inbox","seq":${d.seq},"data":${message}}`);
});

/** The `sub` claim of a JWT, unchecked (the floor does no token check). */
function deviceOf(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown };
  return typeof claims.sub === 'string' ? claims.sub : undefined;
}

const server = healthServer();
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  let device: string | undefined;
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString()) as { type?: string; token?: string };
    if (f.type !== 'hello' || device !== undefined) return;
    const id = typeof f.token === 'string' ? deviceOf(f.token) : undefined;
    if (!id) return ws.close(4001, 'no device');
    device = id;
    devices.set(id, { ws, seq: 0 });
    sub.subscribe(`d:${id}`).then(
      () =>
        ws.send(
          JSON.stringify({
            type: 'welcome',
            node,
            device: id,
            user: 'u',
            heartbeatMs: 30000,
            streams: { inbox: { cursor: 0 } },
          }),
        ),
      () => ws.close(1011, 'redis'),
    );
  });
  ws.on('close', () => {
    if (device === undefined || devices.get(device)?.ws !== ws) return;
    devices.delete(device);
    void sub.unsubscribe(`d:${device}`).catch(() => undefined);
  });
  ws.on('error', () => undefined);
});
server.listen(port, host);
exitOnSignal(() => {
  server.close();
  sub.disconnect();
});
