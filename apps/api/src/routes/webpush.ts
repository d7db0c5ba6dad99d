import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
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
  WebPushRegistered,
  WebPushSubscriptionBody,
  WebPushUnsubscribeBody,
} from '../schemas.js';
import { keysFor } from '../tenant-keys.js';

export interface WebPushRoutesOptions {
  redis: RedisClient;
  /** The default app's keys; a request's own come from keysFor. */
  keys: Keys;
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
  const cfg = o.config;
  const store = (req: FastifyRequest) =>
    new WebPushStore(o.redis, keysFor(req, o.keys), {
      maxPerDevice: cfg?.maxPerDevice ?? 5,
      retentionMs: o.deviceRetentionS * 1000,
    });

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
        description: 'No API key: pages pass it to pushManager.subscribe as applicationServerKey.',
        tags,
        response: { 200: WebPushKey, ...errorResponses(404) },
      },
    },
    async () => {
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
