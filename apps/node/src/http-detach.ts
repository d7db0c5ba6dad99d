import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

type FreeParser = (parser: unknown, req: unknown, socket: unknown) => void;

/** Node's own parser release (what an upgrade calls); absent in a runtime that does not have it. */
const freeParser: FreeParser | undefined = (() => {
  try {
    return (createRequire(import.meta.url)('_http_common') as { freeParser?: FreeParser }).freeParser;
  } catch {
    return undefined;
  }
})();

/** The listeners Node's HTTP server puts on a connection (node/lib/_http_server.js, Node 20-22). */
const HTTP_LISTENERS: readonly [string, RegExp][] = [
  ['data', /^bound socketOnData$/],
  ['end', /^bound socketOnEnd$/],
  ['close', /^bound socketOnClose$/],
  ['drain', /^bound socketOnDrain$/],
  ['error', /^socketOnError$/],
  ['timeout', /^socketOnTimeout$/],
  ['resume', /^onSocketResume$/],
  ['pause', /^onSocketPause$/],
];

/** Per-socket overrides the HTTP server installs; the prototype's methods come back without them. */
const OVERRIDES = ['on', 'addListener', 'prependListener', 'setEncoding'] as const;

/**
 * Takes a connection away from Node's HTTP server once its request has been read, as the server
 * does itself for a WebSocket upgrade: its socket listeners, its parser and the response's hold
 * on the socket go, so a long-lived stream keeps only the socket (an idle SSE stream: 5.7 KiB of
 * heap with the HTTP machinery kept, measured with 3,000 streams; see docs/operations.md). The
 * caller then writes the HTTP response itself, ending with the connection (`Connection: close`).
 *
 * Returns undefined, and changes nothing, when the connection is not exactly as expected (a
 * pipelined request behind this one, another Node version's listeners): the caller then answers
 * through the `ServerResponse` as usual.
 */
export function takeSocket(req: IncomingMessage, res: ServerResponse): Socket | undefined {
  const socket = req.socket as Socket & { parser?: { incoming?: unknown } | null };
  const parser = socket.parser;
  if (!freeParser || !parser || !req.complete || parser.incoming !== req) return undefined;
  const found: [string, (...args: unknown[]) => void][] = [];
  for (const [event, name] of HTTP_LISTENERS) {
    const ls = socket.listeners(event).filter((l) => name.test((l as { name: string }).name));
    if (ls.length !== 1) return undefined;
    found.push([event, ls[0] as (...args: unknown[]) => void]);
  }
  for (const [event, l] of found) socket.removeListener(event, l);
  freeParser(parser, req, socket);
  res.detachSocket(socket);
  const own = socket as unknown as Record<string, unknown>;
  for (const k of OVERRIDES) if (Object.hasOwn(own, k)) delete own[k];
  // Reads (and drops) what the client sends, so its FIN ends the socket and it closes. The
  // server's sockets are half-open ones (Node's HTTP server ends them on FIN itself, with the
  // listener removed above): without ending ours here a client that left was seen only at the
  // next write (the SSE heartbeat, up to 15 s later), and its presence lasted that long.
  socket.once('end', () => socket.end());
  socket.resume();
  return socket;
}
