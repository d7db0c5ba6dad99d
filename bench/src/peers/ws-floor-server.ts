/**
 * The floor of a WebSocket connect on Node (issue #14): a bare `ws` server that does what every
 * Node push server must do per connect and nothing more: the HTTP upgrade, one text frame in
 * (Herald's `hello`, parsed as JSON) and one out (a `welcome` of Herald's shape). No token check,
 * no Redis, no framework. The load generator's Herald client drives it (`ws-floor` system).
 * Env: PORT, HOST (default 127.0.0.1).
 */
import { WebSocketServer } from 'ws';
import { healthServer } from './bare.js';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const node = `floor-${process.pid}`;

const server = healthServer();
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString()) as { type?: string };
    if (f.type !== 'hello') return;
    ws.send(
      JSON.stringify({
        type: 'welcome',
        node,
        device: 'd',
        user: 'u',
        heartbeatMs: 30000,
        streams: { inbox: { cursor: 0 }, broadcast: { cursor: 0 } },
      }),
    );
  });
  ws.on('error', () => undefined);
});
server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
