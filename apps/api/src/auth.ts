import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Unauthorized } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * First 16 hex of sha256(api key): scopes Idempotency-Keys per publisher without the key
     * itself ever reaching Redis or the logs.
     */
    apiKeyId: string;
  }
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export function apiKeyId(key: string): string {
  return sha256(key).toString('hex').slice(0, 16);
}

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * An onRequest hook checking `Authorization: Bearer <key>`. Both sides are hashed first so
 * timingSafeEqual compares equal lengths, and every key is compared (no early exit), so the
 * time taken says nothing about which key or how much of it matched.
 */
export function authenticator(keys: readonly string[]) {
  const hashes = keys.map(sha256);
  return async function authenticate(req: FastifyRequest): Promise<void> {
    const header = req.headers.authorization;
    if (!header) throw new Unauthorized('missing API key: send Authorization: Bearer <key>');
    const m = BEARER.exec(header);
    if (!m) throw new Unauthorized('Authorization must be Bearer <api key>');
    const presented = sha256(m[1] as string);
    let ok = false;
    for (const h of hashes) ok = timingSafeEqual(presented, h) || ok;
    if (!ok) throw new Unauthorized('invalid API key');
    req.apiKeyId = presented.toString('hex').slice(0, 16);
  };
}
