import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Encoding } from './transport.js';

/**
 * A server-to-client WebSocket text frame, header and payload in one buffer: made once per
 * shared frame (a notification written to many sockets), so each socket then costs one buffered
 * write, with no per-socket header, UTF-8 encoding or frame bookkeeping.
 */
export function wsTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const n = payload.length;
  // RFC 6455 5.2: FIN + text opcode; server frames are not masked.
  const header =
    n < 126
      ? Buffer.from([0x81, n])
      : n < 65_536
        ? Buffer.from([0x81, 126, n >> 8, n & 0xff])
        : Buffer.concat([Buffer.from([0x81, 127]), bigLength(n)]);
  return Buffer.concat([header, payload]);
}

/** The WebSocket encoding of a `SharedFrame`. */
export const WS_TEXT: Encoding<Buffer> = { encode: wsTextFrame };

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

interface WsInternals {
  _socket?: Socket;
  _sender?: { _state: number; _queue: unknown[] };
}

/**
 * Writes a pre-encoded frame (`bytes`, the encoding of `text`) straight to the socket under
 * `ws`. Only when ws has nothing of its own queued (it queues while compressing or reading a
 * Blob; Herald uses neither, since permessage-deflate is off): otherwise the frame goes through
 * `ws.send` to keep the order. JS runs one write at a time, so the frame never lands inside
 * another frame.
 */
export function writeFrame(ws: WebSocket, bytes: Buffer, text: string): void {
  const w = ws as unknown as WsInternals;
  const sender = w._sender;
  if (w._socket && sender && sender._state === 0 && sender._queue.length === 0) w._socket.write(bytes);
  else ws.send(text);
}
