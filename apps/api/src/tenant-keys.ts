import type { AppConfig } from '@herald/config';
import type { Keys } from '@herald/store';
import type { FastifyRequest } from 'fastify';
import type { WebPushApiConfig } from './push-policy.js';

/**
 * The Redis keys of the request's app: `request.tenant`, set by the API-key hook (auth.ts) or,
 * on the device routes, from the device token's app (device-auth.ts). The one place the Web
 * Push routes get Keys from.
 */
export function keysFor(req: FastifyRequest): Keys {
  return req.tenant.keys;
}

/**
 * An app's Web Push settings: its own VAPID public key from the apps file when it has one, else
 * HERALD_VAPID_PUBLIC_KEY (docs/webpush.md). Undefined: Web Push is off on this API.
 */
export function webpushOf(
  cfg: WebPushApiConfig | undefined,
  app: AppConfig | undefined,
): WebPushApiConfig | undefined {
  if (!cfg) return undefined;
  return app?.vapid ? { ...cfg, publicKey: app.vapid.publicKey } : cfg;
}
