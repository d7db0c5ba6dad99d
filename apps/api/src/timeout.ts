import type { FastifyInstance, FastifyReply, RouteHandlerMethod } from 'fastify';
import { RedisUnavailable } from './errors.js';

/**
 * Settles like `p`, or rejects with `onTimeout()` after `ms`. The underlying work is not
 * cancelled; this only bounds how long a request waits for it.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * After the deadline answer went out, the handler may still finish (its Redis commands were
 * sent and run once Redis answers again). Its own `code`/`send` are then dropped instead of
 * tripping Fastify's "reply already sent" warning; a late success is logged, because it means
 * a request answered 503 took effect anyway (the Idempotency-Key retry then finds it).
 */
function dropLateAnswer(reply: FastifyReply): void {
  const { code, send } = reply;
  let lateStatus: number | undefined;
  reply.code = function (this: FastifyReply, status: number) {
    if (!this.sent) return code.call(this, status);
    lateStatus = status;
    return this;
  } as FastifyReply['code'];
  reply.send = function (this: FastifyReply, payload?: unknown) {
    if (!this.sent) return send.call(this, payload);
    if (payload instanceof Error) return this;
    const id = (payload as { id?: unknown } | undefined)?.id;
    this.log.warn(
      { lateStatus: lateStatus ?? 200, ...(typeof id === 'string' ? { id } : {}) },
      'request answered 503 at the Redis deadline completed afterwards',
    );
    return this;
  } as FastifyReply['send'];
}

/**
 * Bounds every route whose URL starts with one of `prefixes`: a handler that has not answered
 * `ms` after it started (the request has been read and validated by then) is answered
 * `503 HERALD_REDIS_UNAVAILABLE` (Retry-After: 1, from the error handler). Handlers on those
 * routes only wait for Redis, so a late one means Redis is stalled or slow: a SIGSTOPped Redis
 * keeps its sockets open, so nothing fails on its own. Measured (issue #12, 4 publishers, Redis
 * stopped 10 s): without this, 503s took up to 6.0 s (two 3 s command timeouts in a row) and
 * 202s up to 4 s. The handler is not cancelled: see dropLateAnswer. Call before the routes are
 * registered (it is an onRoute hook).
 *
 * `except` lists routes bounded per item instead: a batch's items each carry the same bound (their
 * Redis commands time out at `ms`), so a whole-request 503 would hide items that were accepted,
 * and a batch has no Idempotency-Key to make its retry safe. A large batch on a busy but healthy
 * Redis can take longer than `ms` (the bench smoke test saw a whole batch answered 503 on the
 * loaded CI machine); its answer then says per item what happened (202, or 207).
 */
export function installRedisDeadline(
  app: FastifyInstance,
  ms: number,
  prefixes: readonly string[],
  except: readonly string[] = [],
): void {
  app.addHook('onRoute', (route) => {
    if (!prefixes.some((p) => route.url.startsWith(p)) || except.includes(route.url)) return;
    const handler = route.handler as RouteHandlerMethod;
    route.handler = function deadlined(this: FastifyInstance, req, reply) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          dropLateAnswer(reply);
          reject(new RedisUnavailable());
        }, ms);
      });
      const work = Promise.resolve(handler.call(this, req, reply));
      return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
    } as RouteHandlerMethod;
  });
}
