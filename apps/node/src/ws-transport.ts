import type { Socket } from 'node:net';
import { CLOSE_MESSAGE_TOO_BIG, closeLabel } from '@herald/protocol';
import type { RawData, WebSocket } from 'ws';
import { corkForTick } from './cork.js';
import type { Peer, SharedFrame, Transport } from './transport.js';
import { WS_TEXT, writeFrame } from './wire.js';

/** A peer that never answers the close handshake is cut after this long. */
const CLOSE_HANDSHAKE_MS = 5000;

const kPeer = Symbol('herald.peer');

type Tagged = WebSocket & { [kPeer]: Peer };

// Socket listeners shared by every connection (`this` is the socket): no closures per connection.
function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const peer = (this as Tagged)[kPeer];
  if (isBinary) peer.refuse('binary frames are not supported');
  else peer.receive(data.toString());
}
function onPong(this: WebSocket): void {
  (this as Tagged)[kPeer].heard();
}
function onClose(this: WebSocket, code: number): void {
  (this as Tagged)[kPeer].ended(code === CLOSE_MESSAGE_TOO_BIG ? closeLabel(code) : 'peer');
}
function onError(this: WebSocket, err: Error): void {
  (this as Tagged)[kPeer].failed(err);
}
function terminate(ws: WebSocket): void {
  ws.terminate();
}

/** Holds the socket's writes until the end of the tick (cork.ts). */
function cork(ws: WebSocket): void {
  const raw = (ws as unknown as { _socket?: Socket })._socket;
  if (raw) corkForTick(raw);
}

/** The WebSocket transport: the handle of a connection is its `ws` socket. */
export const wsTransport: Transport<WebSocket> = {
  kind: 'ws',
  write(ws: WebSocket, frame: string | SharedFrame): void {
    cork(ws);
    if (typeof frame === 'string') ws.send(frame);
    else writeFrame(ws, frame.as(WS_TEXT), frame.text);
  },
  buffered(ws: WebSocket): number {
    return ws.bufferedAmount;
  },
  close(ws: WebSocket, code: number, reason: string): void {
    ws.close(code, reason);
    setTimeout(terminate, CLOSE_HANDSHAKE_MS, ws).unref();
  },
  terminate,
  ping(ws: WebSocket): void {
    ws.ping();
  },
};

/** Routes a socket's events to its session, through the shared listeners above. */
export function attachWs(ws: WebSocket, peer: Peer): void {
  (ws as Tagged)[kPeer] = peer;
  ws.on('message', onMessage);
  ws.on('pong', onPong);
  ws.on('close', onClose);
  ws.on('error', onError);
}
