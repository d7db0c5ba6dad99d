import createError from '@fastify/error';

/**
 * Every error the API answers with, created once with its code and status. Bodies are always
 * `{"code": "HERALD_...", "message": "..."}` (see error-handler.ts).
 */
export const BadRequest = createError<'HERALD_BAD_REQUEST', 400, [string]>('HERALD_BAD_REQUEST', '%s', 400);
export const Unauthorized = createError<'HERALD_UNAUTHORIZED', 401, [string]>(
  'HERALD_UNAUTHORIZED',
  '%s',
  401,
);
export const NotFound = createError<'HERALD_NOT_FOUND', 404, [string]>('HERALD_NOT_FOUND', '%s', 404);
export const IdempotencyConflict = createError<'HERALD_IDEMPOTENCY_CONFLICT', 409, [string]>(
  'HERALD_IDEMPOTENCY_CONFLICT',
  'Idempotency-Key %s was already used with a different body',
  409,
);
export const IdempotencyInProgress = createError<'HERALD_IDEMPOTENCY_IN_PROGRESS', 409, [string]>(
  'HERALD_IDEMPOTENCY_IN_PROGRESS',
  'a request with Idempotency-Key %s is still being processed; retry later',
  409,
);
export const AlreadySent = createError<'HERALD_ALREADY_SENT', 409, [string, string]>(
  'HERALD_ALREADY_SENT',
  'notification %s cannot be cancelled: it is %s',
  409,
);
export const PayloadTooLarge = createError<'HERALD_PAYLOAD_TOO_LARGE', 413, [number]>(
  'HERALD_PAYLOAD_TOO_LARGE',
  'request body is larger than %d bytes',
  413,
);
export const DataTooLarge = createError<'HERALD_DATA_TOO_LARGE', 413, [number, number]>(
  'HERALD_DATA_TOO_LARGE',
  'data is %d bytes as JSON, more than the %d allowed',
  413,
);
export const UnsupportedMediaType = createError<'HERALD_UNSUPPORTED_MEDIA_TYPE', 415, [string]>(
  'HERALD_UNSUPPORTED_MEDIA_TYPE',
  '%s',
  415,
);
export const Internal = createError<'HERALD_INTERNAL', 500, [{ cause: unknown }?]>(
  'HERALD_INTERNAL',
  'internal error',
  500,
);
export const RedisUnavailable = createError<'HERALD_REDIS_UNAVAILABLE', 503, [{ cause: unknown }?]>(
  'HERALD_REDIS_UNAVAILABLE',
  'Redis is unavailable; retry later',
  503,
);
export const NotReady = createError<'HERALD_NOT_READY', 503, [string, { cause: unknown }?]>(
  'HERALD_NOT_READY',
  '%s',
  503,
);

/**
 * Redis error replies that mean "Redis cannot serve now" rather than "this command is wrong":
 * out of memory (noeviction), loading the AOF, a replica or a cluster in failover.
 */
const UNAVAILABLE_REPLIES = /^(OOM|LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS)\b/;

/**
 * True for errors from the Redis path that mean it is down or unreachable: connection refused or
 * closed, offline queue off, command timeout, retries exhausted. A plain ReplyError (e.g. a
 * WRONGTYPE or a script bug) is a server fault and stays a 500.
 */
export function isRedisOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return UNAVAILABLE_REPLIES.test(err.message);
  const code = (err as { code?: unknown }).code;
  if (code === 'HERALD_REDIS_UNAVAILABLE') return true;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTCONN|EHOSTUNREACH|ENOTFOUND)$/.test(code)
  )
    return true;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|Command timed out|ECONNREFUSED|enableOfflineQueue/.test(
      err.message,
    )
  );
}
