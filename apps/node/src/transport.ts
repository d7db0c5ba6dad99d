/**
 * The seam between a `Session` (the protocol: who the device is, its streams and cursors, acks,
 * backpressure decisions) and the wire that carries it. The session speaks in server frames as
 * JSON text and protocol close codes; a transport turns them into its own wire format: WebSocket
 * text frames and close frames (ws-transport.ts), Server-Sent Events (sse-transport.ts: an event
 * per frame, a close as a final `error` event) and long-poll answers (poll-transport.ts: the
 * frames of one poll gathered into one JSON response).
 *
 * A transport is a driver shared by every connection of its kind, and a connection is the pair
 * (driver, handle): the WebSocket driver's handle is the `ws` socket itself. There is no adapter
 * object per connection, since idle memory per connection is a benchmark figure (BENCHMARKS.md,
 * "idle memory per connection").
 */
/** The presence API's name of each transport kind (docs/api.md, "Presence"). */
export const PRESENCE_TRANSPORT = { ws: 'websocket', sse: 'sse', poll: 'poll' } as const;

export interface Transport<H = unknown> {
  /** Which transport: `ws`, `sse` or `poll` (the drain answers held polls first). */
  readonly kind: 'ws' | 'sse' | 'poll';
  /**
   * Writes one server frame: JSON text, or a frame shared by many sessions (a notification
   * fanned out to every subscriber of a stream), whose wire encoding the transport makes once.
   * For a notification or a gap, `stream` and `seq` say where the stream stands once the peer
   * has it (the entry's seq, or the seq before a gap's `next`): the HTTP transports put every
   * stream's cursor on the wire with it, WebSocket ignores them.
   */
  write(handle: H, frame: string | SharedFrame, stream?: string, seq?: number): void;
  /** Bytes written but not yet taken by the peer: the session's backpressure signal. */
  buffered(handle: H): number;
  /** Ends the connection with a protocol close code (docs/protocol.md) and a reason. */
  close(handle: H, code: number, reason: string): void;
  /** Cuts the connection at once, without a closing handshake (dead peer, drain deadline). */
  terminate(handle: H): void;
  /** A liveness probe of the transport; the peer's answer comes back as `Peer.heard`. */
  ping(handle: H): void;
}

/** What a transport calls on the session of a connection: the inbound side. */
export interface Peer {
  /** One client frame, as JSON text. */
  receive(text: string): void;
  /** A client frame the protocol does not carry (a binary WebSocket frame): refused with `reason`. */
  refuse(reason: string): void;
  /** A sign of life that is not a frame (a WebSocket pong). */
  heard(): void;
  /** The peer closed or the connection broke; `label` is the `reason` label of the disconnect metric. */
  ended(label: string): void;
  /** A transport error (it is followed by `ended`). */
  failed(err: Error): void;
}

/** A wire encoding of a frame's JSON text, made at most once per shared frame. */
export interface Encoding<T> {
  encode(text: string): T;
}

/**
 * A server frame encoded once as JSON text and written to many sessions. The first two transport
 * kinds that write it cache their wire encodings here (the WebSocket frame bytes, the SSE event
 * text), so a broadcast to 10,000 connections encodes once per kind. A third kind would encode
 * per write (long-poll copies the JSON text, which needs no encoding).
 */
export class SharedFrame {
  private encoding: Encoding<unknown> | undefined = undefined;
  private encoded: unknown = undefined;
  private encoding2: Encoding<unknown> | undefined = undefined;
  private encoded2: unknown = undefined;

  constructor(readonly text: string) {}

  as<T>(encoding: Encoding<T>): T {
    if (this.encoding === encoding) return this.encoded as T;
    if (this.encoding2 === encoding) return this.encoded2 as T;
    const v = encoding.encode(this.text);
    if (this.encoding === undefined) {
      this.encoding = encoding;
      this.encoded = v;
    } else if (this.encoding2 === undefined) {
      this.encoding2 = encoding;
      this.encoded2 = v;
    }
    return v;
  }
}
