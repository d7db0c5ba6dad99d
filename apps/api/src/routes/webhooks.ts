import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@herald/config';
import { WEBHOOK_EVENT_TYPES } from '@herald/protocol';
import {
  type DeadLetter,
  type Keys,
  type RedisClient,
  WEBHOOK_JOB,
  WebhookDeadLetters,
  type WebhookJob,
  webhookJobOptions,
} from '@herald/store';
import type { Queue } from 'bullmq';
import { NotFound } from '../errors.js';
import { errorResponses } from '../schemas.js';

export interface WebhookRoutesOptions {
  redis: RedisClient;
  queue: Queue<WebhookJob>;
  /** HERALD_WEBHOOK_MAX_ATTEMPTS / HERALD_WEBHOOK_RETRY_MS: a replayed request is retried as a new one. */
  retries: { attempts: number; retryMs: number };
}

/** Most dead letters one `replay all` call sends again (call it again for more). */
export const REPLAY_ALL_MAX = 1000;

const Endpoint = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.Enum([...WEBHOOK_EVENT_TYPES])),
  key: Type.Union([Type.String(), Type.Null()], {
    description:
      'The API key whose notification events it gets; null: every key of the app (HERALD_WEBHOOKS).',
  }),
});
const EventBody = Type.Object({
  id: Type.String(),
  type: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  data: Type.Record(Type.String(), Type.Unknown()),
});
const DeadLetterView = Type.Object({
  id: Type.String({ description: 'The request’s webhook-id; also the id to replay it by.' }),
  endpoint: Type.String(),
  failedAt: Type.String({ format: 'date-time' }),
  attempts: Type.Integer(),
  error: Type.String({ description: 'The last failure: `HTTP 500`, `timeout`, `ECONNREFUSED`...' }),
  events: Type.Array(EventBody),
});
const Replayed = Type.Object({
  replayed: Type.Integer(),
  remaining: Type.Integer({ description: 'Dead letters still in the list.' }),
});

const view = (d: DeadLetter) => ({
  id: d.id,
  endpoint: d.endpoint,
  failedAt: new Date(d.failedAt).toISOString(),
  attempts: d.attempts,
  error: d.error,
  events: d.events.map((e) => ({
    id: e.id,
    type: e.type,
    timestamp: new Date(e.ts).toISOString(),
    data: e.data,
  })),
});

/**
 * The app's webhook endpoints and dead letters (docs/webhooks.md), `admin` scope: endpoints are
 * listed without their secrets; a dead letter (a request that exhausted its retries) can be
 * replayed, as the same request (same webhook-id and events) with a fresh set of retries.
 */
export const webhookRoutes: FastifyPluginAsyncTypebox<WebhookRoutesOptions> = async (app, o) => {
  const tags = ['webhooks'];
  const stores = new Map<Keys, WebhookDeadLetters>();
  const dead = (keys: Keys) => {
    let s = stores.get(keys);
    if (!s) {
      s = new WebhookDeadLetters(o.redis, keys);
      stores.set(keys, s);
    }
    return s;
  };
  const replay = async (appId: string, letters: DeadLetter[]) => {
    if (letters.length === 0) return;
    const at = Date.now();
    await o.queue.addBulk(
      letters.map((d) => {
        const data: WebhookJob = { app: appId, endpoint: d.endpoint, msgId: d.id, events: d.events };
        // The request keeps its webhook-id (receivers dedupe on it); the job id must be new.
        return {
          name: WEBHOOK_JOB,
          data,
          opts: webhookJobOptions(`${d.id}.r${at}`, o.retries.attempts, o.retries.retryMs),
        };
      }),
    );
  };

  app.get(
    '/webhooks',
    {
      schema: {
        summary: 'Webhook endpoints of the app',
        description: 'Each endpoint with its URL, event types and API key; never its secret.',
        tags,
        response: { 200: Type.Object({ endpoints: Type.Array(Endpoint) }), ...errorResponses(401, 403) },
      },
    },
    async (req) => ({
      endpoints: (req.tenant.app.webhooks ?? []).map((w) => ({
        id: w.id,
        url: w.url,
        events: w.events,
        key: w.keyId ?? null,
      })),
    }),
  );

  app.get(
    '/webhooks/dead-letters',
    {
      schema: {
        summary: 'Webhook requests that exhausted their retries',
        description:
          'Newest first, at most HERALD_WEBHOOK_DEAD_MAX kept per app. `offset`/`limit` page through them; `total` is how many there are.',
        tags,
        querystring: Type.Object(
          {
            // Strings: query values are not coerced (app.ts); checked by pattern, then parsed.
            offset: Type.Optional(
              Type.String({ pattern: '^[0-9]{1,7}$', description: 'Dead letters to skip (default 0).' }),
            ),
            limit: Type.Optional(
              Type.String({
                pattern: '^([1-9]|[1-9][0-9]|100)$',
                description: 'Most dead letters in the page, 1-100 (default 20).',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            total: Type.Integer(),
            offset: Type.Integer(),
            deadLetters: Type.Array(DeadLetterView),
          }),
          ...errorResponses(400, 401, 403, 503),
        },
      },
    },
    async (req) => {
      const store = dead(req.tenant.keys);
      const offset = Number(req.query.offset ?? 0);
      const limit = Number(req.query.limit ?? 20);
      const [total, list] = await Promise.all([store.count(), store.list(offset, limit)]);
      return { total, offset, deadLetters: list.map(view) };
    },
  );

  app.post(
    '/webhooks/dead-letters/:id/replay',
    {
      schema: {
        summary: 'Send a dead letter again',
        description:
          'Takes the request out of the dead letters and queues it again (same webhook-id and events, a fresh set of retries). 404 when there is no such dead letter (already replayed, or dropped as the oldest).',
        tags,
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) }),
        response: { 202: Replayed, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req, reply) => {
      const store = dead(req.tenant.keys);
      const letters = await store.take([req.params.id]);
      if (letters.length === 0) throw new NotFound(`no dead letter ${req.params.id}`);
      await replay(req.tenant.app.id, letters);
      return reply.code(202).send({ replayed: letters.length, remaining: await store.count() });
    },
  );

  app.post(
    '/webhooks/dead-letters/replay',
    {
      schema: {
        summary: 'Send every dead letter again',
        description: `Queues the oldest dead letters again, at most ${REPLAY_ALL_MAX} per call (\`remaining\` says whether to call again).`,
        tags,
        response: { 202: Replayed, ...errorResponses(401, 403, 503) },
      },
    },
    async (req, reply) => {
      const store = dead(req.tenant.keys);
      const letters = await store.take([], REPLAY_ALL_MAX);
      await replay(req.tenant.app.id, letters);
      return reply.code(202).send({ replayed: letters.length, remaining: await store.count() });
    },
  );
};
