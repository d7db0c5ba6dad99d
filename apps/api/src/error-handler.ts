import { HttpError } from '@herald/protocol';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  BadRequest,
  Internal,
  isRedisOutage,
  NotFound,
  PayloadTooLarge,
  RedisUnavailable,
  UnsupportedMediaType,
} from './errors.js';

export interface ErrorBody {
  code: string;
  message: string;
}

type AnyError = FastifyError & { statusCode?: number };

declare module 'fastify' {
  interface FastifyRequest {
    /** The HERALD_* code this request was answered with, '' when it succeeded (for metrics). */
    errorCode: string;
  }
}

/** Maps Fastify's own errors (parser, body limit, media type) to Herald's codes and shapes. */
function toHerald(err: AnyError, maxBodyBytes: number): AnyError {
  // A HERALD_* code without a status is a store error (e.g. ReplicasNotConfirmed): mapped below.
  if (err.code?.startsWith('HERALD_') && err.statusCode !== undefined) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLarge(maxBodyBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaType('Content-Type must be application/json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new BadRequest('body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BadRequest('body is empty');
  }
  const status = err.statusCode ?? 500;
  if (status === 413) return new PayloadTooLarge(maxBodyBytes);
  if (status === 415) return new UnsupportedMediaType(err.message);
  if (status === 404) return new NotFound(err.message);
  // Other client errors from Fastify (bad URL, content length mismatch...) keep their message.
  if (status >= 400 && status < 500) return new BadRequest(err.message);
  return isRedisOutage(err) ? new RedisUnavailable({ cause: err }) : new Internal({ cause: err });
}

export function installErrorHandlers(app: FastifyInstance, maxBodyBytes: number): void {
  app.decorateRequest('errorCode', '');
  app.setErrorHandler((err: AnyError, req: FastifyRequest, reply: FastifyReply) => {
    const e = toHerald(err, maxBodyBytes);
    const status = e.statusCode ?? 500;
    req.errorCode = e.code;
    // 5xx are ours to fix or to watch (Redis down): log with the original error and its stack.
    if (status >= 500) req.log.error({ err }, `${e.code}: ${err.message}`);
    if (e.code === 'HERALD_UNAUTHORIZED') reply.header('WWW-Authenticate', 'Bearer realm="herald"');
    if (status === 503 || e.code === HttpError.IdempotencyInProgress.code) reply.header('Retry-After', '1');
    const body: ErrorBody = { code: e.code, message: e.message };
    return reply.code(status).type('application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler(async (req) => {
    throw new NotFound(`no route ${req.method} ${(req.url.split('?')[0] ?? '').slice(0, 200)}`);
  });
}
