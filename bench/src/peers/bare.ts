/** What the bare peer servers (ws-floor-server.ts, floor-node.ts, floor-api.ts) share. */
import http from 'node:http';

/** An HTTP server answering `GET /healthz` (200) and 404 to everything else. */
export function healthServer(): http.Server {
  return http.createServer((req, res) => {
    if (req.url === '/healthz')
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    else res.writeHead(404).end();
  });
}

/** On SIGTERM or SIGINT: `close()`, then exit within 200 ms. */
export function exitOnSignal(close: () => void): void {
  const stop = () => {
    close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
