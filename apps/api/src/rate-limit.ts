import rateLimit from '@fastify/rate-limit';
import type { AppConfig } from '@herald/config';
import { type Keys, type RedisClient, WeightedRateLimit } from '@herald/store';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BatchTooLarge, RateLimited } from './errors.js';

/**
 * Limits of an app (its `limits` in the apps file; HERALD_RATE_* for the single app `default`),
 * held across API processes in Redis; docs/tenancy.md is the contract.
 *
 * - publishesPerSecond / publishBurst (per app) and keyPublishesPerSecond / keyPublishBurst (per
 *   key): publish requests (POST /v1/notifications and /v1/notifications/batch, a batch being one
 *   request), with @fastify/rate-limit and its Redis store: a fixed window of burst/rate seconds
 *   admitting `burst` requests, so the long-run rate is `rate` and up to `burst` may come at once.
 * - notificationsPerSecond: what a publish asks Herald to fan out, counted from the request
 *   alone (no Redis read): one per distinct listed device, one per distinct listed user (not per
 *   device of the user), one per topic or broadcast publish; a batch spends the sum of its
 *   items. A 1 s window spent all or nothing (rate-weighted.lua); a publish bigger than the whole
 *   budget is admitted when it has a window to itself.
 * - maxBatch: items in one batch (413 HERALD_BATCH_TOO_LARGE, not a rate).
 *
 * A refused request is a 429 HERALD_RATE_LIMITED with Retry-After (seconds until its window
 * ends) and was not accepted. A request refused by a later limit has spent its earlier ones.
 * Apps without limits cost nothing here (no Redis command).
 */

const PUBLISH = 'POST /v1/notifications';
const BATCH = 'POST /v1/notifications/batch';

interface PublishBody {
  to?: { devices?: string[]; users?: string[]; topic?: string; broadcast?: true };
}

/** Notifications a publish fans out, as counted for notificationsPerSecond (see above). */
export function notificationCost(body: PublishBody): number {
  const to = body.to ?? {};
  if (to.devices) return new Set(to.devices).size;
  if (to.users) return new Set(to.users).size;
  return 1;
}

type Check = (req: FastifyRequest) => Promise<{ isExceeded?: boolean; ttl?: number }>;

/** A limiter of @fastify/rate-limit on its own context, so each has its own Redis namespace and options. */
async function limiter(
  parent: FastifyInstance,
  redis: RedisClient,
  nameSpace: string,
  rate: (app: AppConfig) => { perS: number; burst: number },
  key: (req: FastifyRequest) => string,
): Promise<Check> {
  let check: Check | undefined;
  await parent.register(async (ctx) => {
    await ctx.register(rateLimit, {
      global: false,
      redis,
      nameSpace,
      max: (req) => rate(req.tenant.app).burst,
      // burst/rate seconds: `burst` requests per window is `rate` per second in the long run.
      timeWindow: (req) => {
        const r = rate(req.tenant.app);
        return Math.max(1, Math.round((r.burst / r.perS) * 1000));
      },
      keyGenerator: key,
    });
    check = ctx.createRateLimit() as Check;
  });
  return (req) => (check as Check)(req);
}

function refuse(reply: FastifyReply, ttlMs: number, what: string): never {
  reply.header('Retry-After', String(Math.max(1, Math.ceil(ttlMs / 1000))));
  throw new RateLimited(what);
}

export async function installRateLimits(v1: FastifyInstance, deps: { redis: RedisClient; keys: Keys }) {
  const ns = deps.keys.rateLimitPrefix();
  const perApp = await limiter(
    v1,
    deps.redis,
    `${ns}p:`,
    (a) => ({
      perS: a.limits.publishesPerSecond ?? 1,
      burst: a.limits.publishBurst ?? a.limits.publishesPerSecond ?? 1,
    }),
    (req) => req.tenant.app.id,
  );
  const perKey = await limiter(
    v1,
    deps.redis,
    `${ns}k:`,
    (a) => ({
      perS: a.limits.keyPublishesPerSecond ?? 1,
      burst: a.limits.keyPublishBurst ?? a.limits.keyPublishesPerSecond ?? 1,
    }),
    (req) => `${req.tenant.app.id}:${req.tenant.keyId}`,
  );
  const notifications = new WeightedRateLimit(deps.redis);

  v1.addHook('preHandler', async (req, reply) => {
    const route = `${req.method} ${req.routeOptions.url}`;
    if (route !== PUBLISH && route !== BATCH) return;
    const { app } = req.tenant;
    const l = app.limits;
    const items: PublishBody[] =
      route === BATCH
        ? (req.body as { notifications: PublishBody[] }).notifications
        : [req.body as PublishBody];
    if (route === BATCH && l.maxBatch !== undefined && items.length > l.maxBatch)
      throw new BatchTooLarge(items.length, l.maxBatch);
    if (l.keyPublishesPerSecond) {
      const r = await perKey(req);
      if (r.isExceeded)
        refuse(
          reply,
          r.ttl ?? 1000,
          `this API key is over its ${l.keyPublishesPerSecond} publishes per second`,
        );
    }
    if (l.publishesPerSecond) {
      const r = await perApp(req);
      if (r.isExceeded)
        refuse(
          reply,
          r.ttl ?? 1000,
          `app ${app.id} is over its ${l.publishesPerSecond} publishes per second`,
        );
    }
    if (l.notificationsPerSecond) {
      const max = l.notificationsPerSecond;
      const cost = Math.min(
        max,
        items.reduce((n, b) => n + notificationCost(b), 0),
      );
      const r = await notifications.spend(deps.keys.notificationRate(app.id), cost, max, 1000);
      if (!r.ok) refuse(reply, r.ttlMs, `app ${app.id} is over its ${max} notifications per second`);
    }
  });
}
