import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppRegistry } from '@herald/config';
import { endpointProblem } from '@herald/protocol';
import { type Keys, type RedisClient, WebPushStore } from '@herald/store';
import type { FastifyRequest } from 'fastify';
import { BadRequest, WebPushUnavailable } from '../errors.js';
import type { WebPushApiConfig } from '../push-policy.js';
import {
  AdminDeviceParams,
  errorResponses,
  NoContent,
  WebPushKey,
  WebPushKeyQuery,
  WebPushRegistered,
  WebPushSubscriptionBody,
  WebPushUnsubscribeBody,
} from '../schemas.js';
import { keysFor, webpushOf } from '../tenant-keys.js';

export interface WebPushRoutesOptions {
  redis: RedisClient;
  /** The apps: each may have its own VAPID pair (docs/webpush.md, docs/tenancy.md). */
  apps: AppRegistry;
  /** HERALD_VAPID_PUBLIC_KEY and the endpoint rules; an app's own public key replaces the key. */
  config: WebPushApiConfig | undefined;
  deviceRetentionS: number;
  /** API key or the device's own token (device-auth.ts). */
  authenticate: (req: FastifyRequest) => Promise<void>;
}

/**
 * Web Push registration (docs/webpush.md). Pages call these from the browser with a device
 * token, so they answer CORS preflights (the token is a bearer header, never a cookie: any
 * origin may send it, as any origin may open the nodes' WebSocket with a token).
 */
export const webpushRoutes: FastifyPluginAsyncTypebox<WebPushRoutesOptions> = async (app, o) => {
  const tags = ['webpush'];
  // One store per app (its Keys object is cached by Keys.forApp).
  const stores = new WeakMap<Keys, WebPushStore>();
  const store = (req: FastifyRequest): WebPushStore => {
    const keys = keysFor(req);
    let s = stores.get(keys);
    if (!s) {
      s = new WebPushStore(o.redis, keys, {
        maxPerDevice: o.config?.maxPerDevice ?? 5,
        retentionMs: o.deviceRetentionS * 1000,
      });
      stores.set(keys, s);
    }
    return s;
  };

  app.addHook('onRequest', async (req, reply) => {
    reply.header('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS') {
      reply.header('Access-Control-Allow-Methods', 'GET, PUT, DELETE');
      reply.header('Access-Control-Allow-Headers', 'Authorization, Content-Type');
      reply.header('Access-Control-Max-Age', '600');
      return reply.code(204).send();
    }
  });
  app.options('/webpush/key', { schema: { hide: true } }, async () => undefined);
  app.options('/devices/:device/webpush', { schema: { hide: true } }, async () => undefined);

  app.get(
    '/webpush/key',
    {
      schema: {
        summary: 'The VAPID public key',
        description:
          'No API key: pages pass it to pushManager.subscribe as applicationServerKey. `app`: the app whose key (its own VAPID pair from the apps file, else HERALD_VAPID_PUBLIC_KEY); default `default`.',
        tags,
        querystring: WebPushKeyQuery,
        response: { 200: WebPushKey, ...errorResponses(400, 404) },
      },
    },
    async (req) => {
      const id = req.query.app ?? 'default';
      const app = o.apps.get(id);
      // An unknown app answers as one without Web Push: the route tells nothing about which apps exist.
      const cfg = app ? webpushOf(o.config, app) : undefined;
      if (!cfg?.publicKey) throw new WebPushUnavailable();
      return { publicKey: cfg.publicKey };
    },
  );

  app.put(
    '/devices/:device/webpush',
    {
      onRequest: o.authenticate,
      schema: {
        summary: "Register a device's Web Push subscription",
        description:
          "With the device's own token or an API key. Several per device (HERALD_WEBPUSH_MAX_PER_DEVICE, the oldest dropped); the same endpoint again refreshes it.",
        tags,
        params: AdminDeviceParams,
        body: WebPushSubscriptionBody,
        response: { 200: WebPushRegistered, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const cfg = webpushOf(o.config, req.tenant.app);
      if (!cfg?.publicKey) throw new WebPushUnavailable();
      const problem = endpointProblem(req.body.endpoint, cfg);
      if (problem) throw new BadRequest(problem);
      const saved = await store(req).put(req.params.device, {
        endpoint: req.body.endpoint,
        keys: req.body.keys,
        createdAt: Date.now(),
      });
      return { id: saved.id, createdAt: new Date(saved.createdAt).toISOString() };
    },
  );

  app.delete(
    '/devices/:device/webpush',
    {
      onRequest: o.authenticate,
      schema: {
        summary: "Remove a device's Web Push subscription",
        description: 'The one with this endpoint, or every one of the device without a body.',
        tags,
        params: AdminDeviceParams,
        body: WebPushUnsubscribeBody,
        response: { 204: NoContent, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (req, reply) => {
      const s = store(req);
      const endpoint = req.body?.endpoint;
      if (endpoint) await s.removeEndpoint(req.params.device, endpoint);
      else for (const sub of await s.list(req.params.device)) await s.remove(req.params.device, sub.id);
      return reply.code(204).send();
    },
  );
};
