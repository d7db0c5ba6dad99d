import type { WebhookEvent } from './events.js';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

/**
 * The worker's webhook requests (docs/webhooks.md): one BullMQ job per request (one endpoint,
 * many events), retried with exponential backoff; the API's replay route adds them too.
 */
export const WEBHOOK_QUEUE = 'webhooks';
export const WEBHOOK_JOB = 'webhook';

/** One webhook request: the events for one endpoint of one app. */
export interface WebhookJob {
  app: string;
  endpoint: string;
  /** The request's `webhook-id` (Standard Webhooks `msg_...`): the same on every retry. */
  msgId: string;
  events: WebhookEvent[];
}

/** Job options: the job id is the message id (a second add of the same request is a no-op). */
export function webhookJobOptions(msgId: string, attempts: number, retryMs: number) {
  return {
    jobId: msgId,
    attempts,
    backoff: { type: 'exponential' as const, delay: retryMs },
    removeOnComplete: { age: 600, count: 10_000 },
    // Kept in the dead-letter list (bounded) instead: failed jobs are removed at once.
    removeOnFail: true,
  };
}

/** A request that exhausted its retries, as listed by the admin API. */
export interface DeadLetter {
  /** The request's message id (also its dead-letter id). */
  id: string;
  endpoint: string;
  failedAt: number;
  attempts: number;
  /** The last failure: `HTTP 500`, `timeout`, `ECONNREFUSED`... */
  error: string;
  events: WebhookEvent[];
}

/** An app's dead letters: a hash of JSON by id and a zset of their order, bounded (webhook-dead.lua). */
export class WebhookDeadLetters {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
  ) {
    this.redis = withScripts(redis);
  }

  withKeys(keys: Keys): WebhookDeadLetters {
    return keys === this.keys ? this : new WebhookDeadLetters(this.redis, keys);
  }

  /** Adds one; returns how many old ones were dropped to keep `max`. */
  async add(d: DeadLetter, max: number): Promise<number> {
    return this.redis.heraldWebhookDead(
      this.keys.webhookDead(),
      this.keys.webhookDeadOrder(),
      d.id,
      JSON.stringify(d),
      d.failedAt,
      max,
    );
  }

  async count(): Promise<number> {
    return this.redis.zcard(this.keys.webhookDeadOrder());
  }

  /** A page, newest first: `offset` dead letters skipped, at most `limit`. */
  async list(offset: number, limit: number): Promise<DeadLetter[]> {
    const ids = await this.redis.zrevrange(this.keys.webhookDeadOrder(), offset, offset + limit - 1);
    if (ids.length === 0) return [];
    const values = await this.redis.hmget(this.keys.webhookDead(), ...ids);
    return values.flatMap((v) => (v ? [JSON.parse(v) as DeadLetter] : []));
  }

  /** Takes dead letters out for a replay: these ids, or the oldest `count` (webhook-take.lua). */
  async take(ids: readonly string[], count = 0): Promise<DeadLetter[]> {
    const out = await this.redis.heraldWebhookTake(
      this.keys.webhookDead(),
      this.keys.webhookDeadOrder(),
      count,
      ...ids,
    );
    return out.map((v) => JSON.parse(v) as DeadLetter);
  }
}

/**
 * Notifications whose publishing key wants `notification.expired`: a zset by expiry, added by the
 * API at publish, read by the worker once due (`due`) and taken (`take`) by one worker, which records the event.
 */
export class WebhookExpiries {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  withKeys(keys: Keys): WebhookExpiries {
    return keys === this.keys ? this : new WebhookExpiries(this.redis, keys);
  }

  async add(id: string, exp: number): Promise<void> {
    await this.redis.zadd(this.keys.webhookExpiries(), exp, id);
  }

  /** Ids expired by `now`, oldest first, at most `count`. */
  async due(now: number, count: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.webhookExpiries(), 0, now, 'LIMIT', 0, count);
  }

  /** Removes these ids; returns those this call removed (another worker may have taken some). */
  async take(ids: readonly string[]): Promise<string[]> {
    const key = this.keys.webhookExpiries();
    const removed = await Promise.all(ids.map((id) => this.redis.zrem(key, id)));
    return ids.filter((_, i) => removed[i] === 1);
  }
}
