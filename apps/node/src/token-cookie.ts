import type { TLSSocket } from 'node:tls';
import { MAX_TOKEN_LENGTH } from '@herald/protocol';
import type { FastifyRequest } from 'fastify';

/**
 * The device token in a cookie, for browsers: `EventSource` cannot set `Authorization`, and a
 * token in the URL ends up in browser history and in proxies' logs that Herald does not control.
 * `POST /v1/cookie` (with `Authorization: Bearer`) sets it, `DELETE /v1/cookie` clears it, and
 * `GET /v1/sse`, `GET /v1/poll` and `POST /v1/acks` read it when the request has neither the
 * header nor `?token=` (docs/protocol.md, "HTTP transports: common rules").
 *
 * Hand-written rather than @fastify/cookie: the node reads one cookie by name and writes one
 * `Set-Cookie` line, a dozen lines, against a plugin that decorates every request.
 */
export const COOKIE_PATH = '/v1/cookie';
export const TOKEN_COOKIE = 'herald_token';

/** Every route that reads the cookie is under this path (and no other route of the origin is). */
const SCOPE = '/v1';

/** The token cookie's value in a `Cookie` header, if there is one (the first, as browsers send the most specific first). */
export function tokenCookie(header: string | undefined): string | undefined {
  if (header === undefined || header.length > 2 * MAX_TOKEN_LENGTH + 4096) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== TOKEN_COOKIE) continue;
    const v = part.slice(eq + 1).trim();
    return v === '' ? undefined : v;
  }
  return undefined;
}

/**
 * Whether the cookie gets `Secure`: the request came over TLS (to the node, or to a proxy that
 * says so in `X-Forwarded-Proto`), or the node is told so (`HERALD_COOKIE_SECURE`, for TLS ended
 * at an L4 balancer, which adds no header). A forged header can only add `Secure`.
 */
export function secureRequest(req: FastifyRequest, always: boolean): boolean {
  if (always || (req.raw.socket as TLSSocket).encrypted === true) return true;
  const proto = req.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.split(',')[0]!.trim().toLowerCase() === 'https';
}

/**
 * The `Set-Cookie` of a token valid `maxAgeS` more seconds: `HttpOnly` (page scripts cannot read
 * it), `SameSite=Strict` (never sent with a request started by another site), `Path=/v1`.
 * JWTs are base64url and dots, so the value needs no quoting.
 */
export function setTokenCookie(token: string, maxAgeS: number, secure: boolean): string {
  return `${TOKEN_COOKIE}=${token}; Max-Age=${maxAgeS}; Path=${SCOPE}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** The `Set-Cookie` that removes it. */
export function clearTokenCookie(secure: boolean): string {
  return `${TOKEN_COOKIE}=; Max-Age=0; Path=${SCOPE}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}
