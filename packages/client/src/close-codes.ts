/** Code reported in `disconnect` when the client itself gave up on a socket (timeouts). */
export const CLOSE_ABNORMAL = 1006;

/**
 * The close codes the client acts on, as in the protocol's catalog (`CloseCode`; a test checks they
 * match). Not imported: `CloseCode` is derived from the catalog, and importing it pulls every
 * close code's documentation into the browser bundle (measured: +4.5 KB raw, over the gzip budget).
 * The HTTP transports map their refusals onto the same codes.
 */
export const CloseCode = {
  BadFrame: 4000,
  Unauthorized: 4001,
  TokenExpired: 4003,
  Draining: 4012,
  Capacity: 4013,
} as const;
