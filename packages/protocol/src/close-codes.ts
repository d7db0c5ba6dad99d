/**
 * WebSocket close codes sent by push nodes. 4000-4999 is the range RFC 6455 leaves to applications.
 * A client reconnects after any of them except the ones marked `final`, which need a new token or a fix.
 */
export const CloseCode = {
  /** Frame was not valid JSON, had an unknown type, or broke the schema. */
  BadFrame: 4000,
  /** The token in `hello` did not verify (signature, claims, algorithm). Final: get a new token. */
  Unauthorized: 4001,
  /** No `hello` arrived within the hello deadline. */
  HelloTimeout: 4002,
  /** The token expired and was not refreshed. Final until a new token is fetched. */
  TokenExpired: 4003,
  /** The peer sent frames faster than allowed. */
  RateLimited: 4008,
  /** The socket's unsent buffer passed its bound: the client reads too slowly. */
  SlowConsumer: 4009,
  /** The node is draining: reconnect (after the delay in the `reconnect` frame). */
  Draining: 4012,
  /** The node is at its connection cap or accept rate. Reconnect with backoff. */
  Capacity: 4013,
  /** Internal error on the node; reconnect with backoff. */
  Internal: 4500,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which reconnecting with the same token is pointless. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([CloseCode.Unauthorized, CloseCode.BadFrame]);

/** ws closes with 1009 by itself when a frame exceeds maxPayload. */
export const CLOSE_MESSAGE_TOO_BIG = 1009;
