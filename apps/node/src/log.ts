import type { IncomingMessage } from 'node:http';

/** Query parameters whose values never reach a log line (a device token in an SSE or long-poll URL). */
const SECRET_PARAMS = /([?&](?:token|access_token)=)[^&#]*/gi;

/** A URL with its secret query values replaced. */
export function redactUrl(url: string): string {
  return url.replace(SECRET_PARAMS, '$1[redacted]');
}

/**
 * The node's log serializers (Fastify `serializers`): a request is logged as its method, URL
 * with the token redacted, and remote address; never its headers (Authorization carries the
 * device token). The node logs no line per request; these cover the ones Fastify writes itself
 * (errors, 404s, client errors).
 */
export const logSerializers = {
  req(req: IncomingMessage & { url?: string; ip?: string }) {
    return {
      method: req.method,
      url: redactUrl(req.url ?? ''),
      remoteAddress: req.ip ?? req.socket?.remoteAddress,
    };
  },
};

/** Child-logger options of the node's HTTP servers: the serializers, and headers redacted wherever they appear. */
export const LOG_REDACTION = {
  serializers: logSerializers,
  redact: {
    paths: [
      'req.headers.authorization',
      'headers.authorization',
      'request.headers.authorization',
      'req.headers.cookie',
    ],
    censor: '[redacted]',
  },
};
