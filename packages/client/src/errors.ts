export interface HeraldErrorOptions {
  /** True when the client stopped because of it (no more reconnects). */
  fatal?: boolean;
  /** The WebSocket close code that caused it, if any. */
  closeCode?: number;
  cause?: unknown;
}

/**
 * What the `error` event carries and `connect()` rejects with. `code` is the server's error code
 * for an `error` frame (`topic_forbidden`, `bad_ack`, ...), or one of the client's own:
 * `unauthorized`, `token_expired`, `bad_frame` (close codes 4001, 4003, 4000), `token_failed` (the
 * token function threw), `storage_failed`, `bad_server_frame`, `socket_failed`, `closed`.
 */
export class HeraldError extends Error {
  readonly code: string;
  readonly fatal: boolean;
  readonly closeCode: number | undefined;

  constructor(code: string, message: string, opts: HeraldErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HeraldError';
    this.code = code;
    this.fatal = opts.fatal ?? false;
    this.closeCode = opts.closeCode;
  }
}
