import createError from '@fastify/error';
import { HttpError as E } from '@herald/protocol';

/**
 * Every error the API answers with, created once from the catalog in @herald/protocol (code,
 * status) with its message. Bodies are always `{"code": "HERALD_...", "message": "..."}` (see
 * error-handler.ts).
 */
type Code<K extends keyof typeof E> = (typeof E)[K]['code'];
type Status<K extends keyof typeof E> = (typeof E)[K]['status'];

function define<K extends keyof typeof E, A extends unknown[]>(name: K, message: string) {
  return createError<Code<K>, Status<K>, A>(E[name].code, message, E[name].status);
}

export const BadRequest = define<'BadRequest', [string]>('BadRequest', '%s');
export const Unauthorized = define<'Unauthorized', [string]>('Unauthorized', '%s');
export const NotFound = define<'NotFound', [string]>('NotFound', '%s');
export const IdempotencyConflict = define<'IdempotencyConflict', [string]>(
  'IdempotencyConflict',
  'Idempotency-Key %s was already used with a different body',
);
export const IdempotencyInProgress = define<'IdempotencyInProgress', [string]>(
  'IdempotencyInProgress',
  'a request with Idempotency-Key %s is still being accepted; retry in a second',
);
export const AlreadySent = define<'AlreadySent', [string, string]>(
  'AlreadySent',
  'notification %s cannot be cancelled: it is %s',
);
export const PayloadTooLarge = define<'PayloadTooLarge', [number]>(
  'PayloadTooLarge',
  'request body is larger than %d bytes',
);
export const DataTooLarge = define<'DataTooLarge', [number, number]>(
  'DataTooLarge',
  'data is %d bytes as JSON, more than the %d allowed',
);
export const PushTooLarge = define<'PushTooLarge', [number, number]>(
  'PushTooLarge',
  'the push message is %d bytes, more than the %d that fit in a 4096-byte encrypted Web Push message',
);
export const TokenExpired = define<'TokenExpired', [string]>('TokenExpired', '%s');
export const DeviceForbidden = define<'DeviceForbidden', [string]>('DeviceForbidden', '%s');
export const WebPushUnavailable = define<'WebPushUnavailable', []>(
  'WebPushUnavailable',
  'Web Push is not configured on this API (no HERALD_VAPID_PUBLIC_KEY)',
);
export const UnsupportedMediaType = define<'UnsupportedMediaType', [string]>('UnsupportedMediaType', '%s');
export const Internal = define<'Internal', [{ cause: unknown }?]>('Internal', 'internal error');
export const RedisUnavailable = define<'RedisUnavailable', [{ cause: unknown }?]>(
  'RedisUnavailable',
  'Redis is unavailable; retry later',
);
export const NotReady = define<'NotReady', [string, { cause: unknown }?]>('NotReady', '%s');
export const DemoUnavailable = define<'DemoUnavailable', [string]>('DemoUnavailable', '%s');

/** What counts as a Redis outage (503, not 500): one definition in the store, for the node too. */
export { isRedisOutage } from '@herald/store';

export const ForbiddenScope = define<'ForbiddenScope', [string]>(
  'ForbiddenScope',
  'this API key lacks the scope %s',
);
export const ConfigKey = define<'ConfigKey', [string]>(
  'ConfigKey',
  'key %s comes from the apps file (or HERALD_API_KEYS): remove it there and reload',
);
export const BatchTooLarge = define<'BatchTooLarge', [number, number]>(
  'BatchTooLarge',
  'a batch of %d notifications is over the app limit of %d',
);
/** Sent with Retry-After (seconds), set by the limiter before it throws. */
export const RateLimited = define<'RateLimited', [string]>('RateLimited', '%s');
