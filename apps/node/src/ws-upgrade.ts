import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';

type UpgradeListener = (this: Server, req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * Takes the plain WebSocket upgrades of `path` ahead of Fastify's router (issue #14). Through
 * @fastify/websocket every upgrade is routed as an HTTP request first: a ServerResponse, a Fastify
 * request, reply and child logger, the plugin's hooks and the route's async preValidation, all
 * dropped once the socket is upgraded. In the connect profile (BENCHMARKS.md, "Issue #14") that
 * routing was 8.5% of a node's busy time, plus the garbage it left; with this shortcut the whole
 * upgrade went from 23.5% to 9.7% (with the synchronous HS256 check, a connect's server CPU fell
 * 13-22%). Here a `GET` of exactly `path` (query allowed) that `admit` lets through goes
 * straight to `ws`'s `handleUpgrade`, which checks the handshake headers itself (400/426 as
 * through the plugin); every other upgrade (another path or method, a refused Origin: its 403
 * body) still goes through Fastify as before. Call after the plugin is registered, before listening.
 */
export function upgradeAhead(
  server: Server,
  wss: WebSocketServer,
  path: string,
  admit: (req: IncomingMessage) => boolean,
  onSocket: (ws: WebSocket, req: IncomingMessage) => void,
): void {
  const routed = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  const withQuery = `${path}?`;
  server.on('upgrade', function (this: Server, req: IncomingMessage, socket: Duplex, head: Buffer) {
    const url = req.url ?? '';
    if (req.method === 'GET' && (url === path || url.startsWith(withQuery)) && admit(req)) {
      wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, req));
      return;
    }
    for (const l of routed) l.call(this, req, socket, head);
  });
}
