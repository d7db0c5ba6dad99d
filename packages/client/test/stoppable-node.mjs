// A minimal push node in its own process, so a test can freeze it with SIGSTOP as an operator's
// `kill -STOP` (or a stuck event loop) would: its kernel still accepts TCP connections, but
// nothing is ever answered. Answers hello with welcome and ping with pong; prints its port.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/ws' });
wss.on('listening', () => console.log(String(wss.address().port)));
wss.on('connection', (ws) => {
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.type === 'hello')
      ws.send(
        JSON.stringify({
          type: 'welcome',
          node: 'stoppable',
          device: 'd1',
          user: 'u1',
          heartbeatMs: 60_000,
          streams: { inbox: { cursor: 0 } },
        }),
      );
    else if (f.type === 'ping') ws.send('{"type":"pong"}');
  });
});
