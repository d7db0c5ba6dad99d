/**
 * The one error catalog: every HTTP error code, WebSocket close code and `error` frame code Herald
 * sends, defined once with its status or close code and a one-line meaning. The API's error
 * classes, the node's close reasons and metric labels, the OpenAPI `code` enum and the error tables
 * in docs/api.md and docs/protocol.md are all derived from these lists (a test keeps the docs in
 * sync: `npm run docs:errors -w @herald/protocol` rewrites the tables).
 *
 * Add a code here before sending it; remove one when nothing sends it any more.
 */

/** An HTTP error: the body is `{"code": <code>, "message": "..."}` with this status. */
export interface HttpErrorSpec {
  readonly code: `HERALD_${string}`;
  readonly status: number;
  /** When it is answered, one line (docs/api.md's table). */
  readonly meaning: string;
}

/** A WebSocket close code a push node (or the `ws` library under it) closes with. */
export interface CloseSpec {
  readonly code: number;
  /** The `reason` label of `herald_disconnects_total`. */
  readonly label: string;
  readonly meaning: string;
  /** What a client should do (docs/protocol.md's table). */
  readonly client: string;
  /** Reconnecting with the same token (or the same frames) cannot succeed. */
  readonly final: boolean;
}

/** A code of an `error` frame: a refused request, the connection stays open. */
export interface FrameErrorSpec {
  readonly code: string;
  readonly meaning: string;
}

const http = <const C extends `HERALD_${string}`, const S extends number>(
  code: C,
  status: S,
  meaning: string,
) => ({ code, status, meaning }) as const;

/** Every HTTP error of the API and the push nodes, by name. */
export const HttpError = {
  BadRequest: http(
    'HERALD_BAD_REQUEST',
    400,
    'the body is not valid JSON, breaks the schema (the message names the field), has an unknown property, nests deeper than 64 levels, has a malformed URL encoding or HTTP framing, or a path parameter or `Idempotency-Key` is malformed',
  ),
  Unauthorized: http(
    'HERALD_UNAUTHORIZED',
    401,
    'no `Authorization` header, not `Bearer`, an unknown key, or a key past its `expiresAt` (the message says `API key expired`); on a push node or `/v1/devices/:device/webpush`: no device token, or an invalid one, or one whose app (`aud`) is unknown. Sent with `WWW-Authenticate: Bearer realm="herald"`. Checked before the body is read.',
  ),
  TokenExpired: http(
    'HERALD_TOKEN_EXPIRED',
    401,
    'push node (SSE, long-poll, acks) and `/v1/devices/:device/webpush`: the device token expired; get a new one',
  ),
  OriginForbidden: http(
    'HERALD_ORIGIN_FORBIDDEN',
    403,
    'push node only: a WebSocket upgrade whose `Origin` is not in `HERALD_ALLOWED_ORIGINS` (refused before the upgrade)',
  ),
  TopicForbidden: http(
    'HERALD_TOPIC_FORBIDDEN',
    403,
    "push node only: a `topics` parameter or an acked topic stream that the token's `topics` claim does not allow",
  ),
  ForbiddenScope: http(
    'HERALD_FORBIDDEN_SCOPE',
    403,
    "the API key lacks the route's scope (`publish`, `status:read`, `presence:read` or `admin`; the message names it)",
  ),
  DeviceForbidden: http(
    'HERALD_DEVICE_FORBIDDEN',
    403,
    '`/v1/devices/:device/webpush` with a device token of another device',
  ),
  NotFound: http('HERALD_NOT_FOUND', 404, 'no such notification, API key, webhook dead letter, or route'),
  WebPushUnavailable: http(
    'HERALD_WEBPUSH_UNAVAILABLE',
    404,
    'Web Push is not configured on this API (no `HERALD_VAPID_PUBLIC_KEY`)',
  ),
  DemoUnavailable: http(
    'HERALD_DEMO_UNAVAILABLE',
    404,
    'console only: the demo device needs `HERALD_TOKEN_SECRET`, which this API was not given',
  ),
  IdempotencyConflict: http(
    'HERALD_IDEMPOTENCY_CONFLICT',
    409,
    'the `Idempotency-Key` was already used, within its window, with a different body',
  ),
  IdempotencyInProgress: http(
    'HERALD_IDEMPOTENCY_IN_PROGRESS',
    409,
    'another request with the same `Idempotency-Key` and body is still being accepted. Sent with `Retry-After: 1`: retry with the same key.',
  ),
  AlreadySent: http(
    'HERALD_ALREADY_SENT',
    409,
    'cancel of a notification that is no longer scheduled (the message says its state)',
  ),
  ConfigKey: http(
    'HERALD_CONFIG_KEY',
    409,
    'revoke of a key that comes from the apps file or `HERALD_API_KEYS`: remove it there and reload (SIGHUP)',
  ),
  PushTooLarge: http(
    'HERALD_PUSH_TOO_LARGE',
    400,
    'the Web Push message of `push` (id, title, body and `payload` or `data`) is over 3993 bytes, which would encrypt to more than the 4096 push services take',
  ),
  PayloadTooLarge: http('HERALD_PAYLOAD_TOO_LARGE', 413, 'the request body is over `HERALD_MAX_BODY_BYTES`'),
  DataTooLarge: http(
    'HERALD_DATA_TOO_LARGE',
    413,
    '`data`, as JSON text, is over `HERALD_MAX_DATA_BYTES` (UTF-8 bytes)',
  ),
  BatchTooLarge: http(
    'HERALD_BATCH_TOO_LARGE',
    413,
    "a batch publish with more items than its app's `limits.maxBatch`",
  ),
  UnsupportedMediaType: http('HERALD_UNSUPPORTED_MEDIA_TYPE', 415, 'a body that is not `application/json`'),
  RateLimited: http(
    'HERALD_RATE_LIMITED',
    429,
    "over a limit of the app or key (publishes per second, notifications per second; docs/tenancy.md), or, on a push node, an SSE or long-poll request over the app's connection cap. Sent with `Retry-After` (seconds).",
  ),
  HeadersTooLarge: http('HERALD_HEADERS_TOO_LARGE', 431, "request headers over Node's limit (16 KiB)"),
  Internal: http('HERALD_INTERNAL', 500, 'a bug; logged with its cause'),
  RedisUnavailable: http(
    'HERALD_REDIS_UNAVAILABLE',
    503,
    'Redis is down or not answering within the request deadline, or (with `HERALD_REDIS_MIN_REPLICAS`) its replicas did not confirm the writes in time. Sent with `Retry-After: 1`. Retry with the same `Idempotency-Key`.',
  ),
  NodeBusy: http(
    'HERALD_NODE_BUSY',
    503,
    'push node only: a long-poll refused at the connection cap, the accept rate or the per-user cap. Sent with `Retry-After: 1`.',
  ),
  NotReady: http(
    'HERALD_NOT_READY',
    503,
    '`/readyz` only: Redis does not answer, or the process is shutting down (or, on a node, at capacity)',
  ),
} as const;

export type HttpErrorName = keyof typeof HttpError;
export type HttpErrorCode = (typeof HttpError)[HttpErrorName]['code'];

export const HTTP_ERRORS: readonly HttpErrorSpec[] = Object.values(HttpError);

const close = <const N extends number>(
  code: N,
  label: string,
  meaning: string,
  client: string,
  final = false,
) => ({ code, label, meaning, client, final }) as const;

/**
 * Every close code, by name. 4000-4999 is the range RFC 6455 leaves to applications; the 1xxx
 * codes are sent by the `ws` library for protocol violations.
 */
export const Close = {
  ProtocolError: close(
    1002,
    'protocol_error',
    'WebSocket protocol violation (bad framing, unmasked client frame, reserved bits), closed by the `ws` library',
    'fix the client',
    true,
  ),
  InvalidUtf8: close(1007, 'invalid_utf8', 'a text frame that is not valid UTF-8', 'fix the client', true),
  TooManyFragments: close(
    1008,
    'too_many_fragments',
    'too many fragments in one message (more than 16,384)',
    'fix the client',
    true,
  ),
  MessageTooBig: close(
    1009,
    'message_too_big',
    "frame larger than the node's limit (default 64 KiB)",
    'fix the client; reconnecting is fine',
  ),
  BadFrame: close(
    4000,
    'bad_frame',
    'bad frame: not JSON, unknown type, wrong fields, binary, or a frame before `hello`',
    'fix the client (final)',
    true,
  ),
  Unauthorized: close(
    4001,
    'unauthorized',
    "token invalid (signature, algorithm, claims, an `aud` app the deployment does not have or signed with another app's keys), a `refresh` token for another device, the token's app removed by a reload (`app <id> removed`), or a browser `Origin` the token's app does not allow",
    'get a new token (final with the same token)',
    true,
  ),
  HelloTimeout: close(4002, 'hello_timeout', 'no `hello` within the deadline', 'reconnect'),
  TokenExpired: close(
    4003,
    'token_expired',
    'token expired (at hello, or later without a `refresh`)',
    'get a new token, reconnect',
  ),
  RateLimited: close(
    4008,
    'rate_limited',
    'frames faster than the documented rate and burst (`frame rate exceeded`), or more than one burst of frames waiting for answers (`too many frames in flight`)',
    'back off, reconnect',
  ),
  SlowConsumer: close(
    4009,
    'slow_consumer',
    'slow consumer: the unsent buffer passed its bound (default 1 MiB)',
    'reconnect; it resumes from its cursors',
  ),
  Draining: close(
    4012,
    'draining',
    'node draining (after a `reconnect` frame)',
    'reconnect after the hinted delay',
  ),
  Capacity: close(
    4013,
    'capacity',
    'node at capacity: its connection cap, accept rate, or connections per user',
    'reconnect with backoff',
  ),
  AppCapacity: close(
    4014,
    'app_capacity',
    "the app's connection cap across all nodes (`limits.maxConnections` in the apps file)",
    'reconnect with backoff',
  ),
  Internal: close(4500, 'internal', 'internal error', 'reconnect with backoff'),
} as const;

export const CLOSE_CODES: readonly CloseSpec[] = Object.values(Close);

type CloseName = keyof typeof Close;

/** Close codes by name (`CloseCode.BadFrame === 4000`), derived from the catalog. */
export const CloseCode = Object.fromEntries(
  Object.entries(Close).map(([name, spec]) => [name, spec.code]),
) as { readonly [K in CloseName]: (typeof Close)[K]['code'] };

export type CloseCodeValue = (typeof CloseCode)[CloseName];

/** Close codes after which reconnecting with the same token is pointless. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set(
  CLOSE_CODES.filter((c) => c.final && c.code >= 4000).map((c) => c.code),
);

/** ws closes with 1009 by itself when a frame exceeds maxPayload. */
export const CLOSE_MESSAGE_TOO_BIG = Close.MessageTooBig.code;

const LABELS = new Map(CLOSE_CODES.map((c) => [c.code, c.label]));

/** The `reason` label of a close code for metrics: the catalog's label, else `internal`/`other`. */
export function closeLabel(code: number): string {
  return LABELS.get(code) ?? (code >= 4500 ? 'internal' : 'other');
}

const frameError = <const C extends string>(code: C, meaning: string) => ({ code, meaning }) as const;

/** Codes of `error` frames, by name (the connection stays open). */
export const FrameErrors = {
  TopicForbidden: frameError('topic_forbidden', "the token's `topics` claim does not allow the topic"),
  TopicInvalid: frameError(
    'topic_invalid',
    'a `subscribe` or `unsubscribe` topic that is not dot-separated words of `A-Z a-z 0-9 _ -`, at most 128 characters',
  ),
  TooManyTopics: frameError(
    'too_many_topics',
    'the connection already has the most topics allowed (default 64)',
  ),
  UnknownStream: frameError('unknown_stream', 'an ack for a stream this connection does not deliver'),
  BadAck: frameError('bad_ack', 'an ack past the last entry the stream has'),
  AlreadyHello: frameError('already_hello', 'a second `hello` on a connection'),
} as const;

export const FRAME_ERRORS: readonly FrameErrorSpec[] = Object.values(FrameErrors);

type FrameErrorName = keyof typeof FrameErrors;

/** Frame error codes by name (`FrameError.BadAck === 'bad_ack'`), derived from the catalog. */
export const FrameError = Object.fromEntries(
  Object.entries(FrameErrors).map(([name, spec]) => [name, spec.code]),
) as { readonly [K in FrameErrorName]: (typeof FrameErrors)[K]['code'] };
