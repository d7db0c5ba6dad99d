/** Wire frames of `/v1/ws`: JSON text frames with a `type`. See docs/protocol.md. */

/** Cursors: the last seq the client has processed, per stream name. */
export type Cursors = Record<string, number>;

// ---- client to server ----
export interface HelloFrame {
  type: 'hello';
  token: string;
  cursors?: Cursors;
}
export interface AckFrame {
  type: 'ack';
  stream: string;
  seq: number;
}
export interface SubscribeFrame {
  type: 'subscribe';
  topic: string;
  /** Resume point for this topic; without it the node uses the stored cursor, else the head. */
  cursor?: number;
}
export interface UnsubscribeFrame {
  type: 'unsubscribe';
  topic: string;
}
export interface PingFrame {
  type: 'ping';
}
export interface RefreshFrame {
  type: 'refresh';
  token: string;
}
export type ClientFrame =
  | HelloFrame
  | AckFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PingFrame
  | RefreshFrame;

// ---- server to client ----
export interface WelcomeFrame {
  type: 'welcome';
  node: string;
  device: string;
  user: string;
  /** Server ping interval; a client that sees no traffic for ~2 intervals may reconnect. */
  heartbeatMs: number;
  /** Streams the node delivers on this connection, with the cursor it resumes from. */
  streams: Record<string, { cursor: number }>;
}
export interface NotificationFrame {
  type: 'notification';
  stream: string;
  seq: number;
  id: string;
  /** Accept time at the API, ms since epoch. */
  ts: number;
  /** The publish's priority when it is not `normal` (absent = normal). */
  priority?: 'high' | 'low';
  data: unknown;
}
/**
 * Entries in (after, next) will never come: trimmed (older than retention), expired (TTL over),
 * collapsed (each superseded by a newer entry with the same collapse key, which comes later on
 * the stream), or reset (the stream was recreated, so seqs start again). The client continues
 * from `next`.
 */
export interface GapFrame {
  type: 'gap';
  stream: string;
  after: number;
  next: number;
  reason: 'trimmed' | 'expired' | 'collapsed' | 'reset';
}
export interface SubscribedFrame {
  type: 'subscribed';
  topic: string;
  cursor: number;
}
export interface UnsubscribedFrame {
  type: 'unsubscribed';
  topic: string;
}
export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  /** The topic a refused subscribe was about. */
  topic?: string;
}
export interface PongFrame {
  type: 'pong';
}
export interface ReconnectFrame {
  type: 'reconnect';
  /** Wait this long before reconnecting, so a draining node's clients do not all return at once. */
  delayMs: number;
  reason: string;
}
export type ServerFrame =
  | WelcomeFrame
  | NotificationFrame
  | GapFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | ErrorFrame
  | PongFrame
  | ReconnectFrame;
