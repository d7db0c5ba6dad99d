import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { ApiConfig } from './config.js';
import { lazyChildLoggerFactory } from './lazy-log.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/** A request id we take from the caller: a plain token that is safe in logs and headers. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** The caller's `X-Request-Id` when it is a sane token (a proxy or the publisher set it), else a new UUID. */
export function requestId(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Fastify's per-request log lines, each from a child logger that carries the client address
 * (`ip`, i.e. `req.ip`, which honours HERALD_TRUST_PROXY) next to the request id (`reqId`), so
 * every line of a request, ours included, can be traced to the request and to its client.
 */
class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    // Called once per request, right after Fastify made it: the earliest point req.ip is known.
    const log = request.log.child({ ip: request.ip });
    request.log = log;
    reply.log = log;
    if (this.isLogDisabled(request)) return;
    const idem = request.headers['idempotency-key'];
    // Idempotency keys are the publisher's own retry handles, not secrets: logged to trace retries.
    const extra = typeof idem === 'string' ? { idempotencyKey: idem.slice(0, 200) } : {};
    log.info({ req: request, ...extra }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply) {
    if (this.isLogDisabled(request)) return;
    const fields = {
      res: reply,
      responseTime: reply.elapsedTime,
      ...(request.errorCode ? { code: request.errorCode } : {}),
    };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else reply.log.info(fields, 'request completed');
  }
}

/** Fastify options for request ids, client addresses, request log lines and path parameters. */
export function requestOptions(config: Pick<ApiConfig, 'trustProxy'>) {
  return {
    trustProxy: config.trustProxy,
    genReqId: requestId,
    // Our genReqId reads and checks the header; Fastify's would take any value as is.
    requestIdHeader: false as const,
    logController: new RequestLogController({ requestIdLogLabel: 'reqId' }),
    // Children made when a line is written, not per request (lazy-log.ts).
    childLoggerFactory: lazyChildLoggerFactory,
    // Device ids and topics may be 128 characters; above Fastify's default of 100 a path
    // parameter got a bare 414 instead of reaching validation.
    routerOptions: { maxParamLength: 256 },
  };
}

/** Echoes the request id, so a caller can quote it and find the request's log lines. */
export function installRequestLogging(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    reply.header(REQUEST_ID_HEADER, req.id);
  });
}
