import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { RedisClient } from './redis.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** counter, n, max, windowMs (rate-weighted.lua). */
    heraldRateWeighted(
      key: string,
      n: number,
      max: number,
      windowMs: number,
    ): Result<[number, number], Context>;
  }
}

const LUA = readFileSync(new URL('../lua/rate-weighted.lua', import.meta.url), 'utf8');

/**
 * A budget of `max` units per fixed window, shared by every process on one Redis: a request
 * spends `n` units at once or is refused without spending (rate-weighted.lua). For limits where
 * one request costs many units (notifications fanned out per second); per-request limits use
 * @fastify/rate-limit in the API.
 */
export class WeightedRateLimit {
  private readonly redis: RedisClient;

  constructor(redis: RedisClient) {
    if (!(redis as Partial<RedisClient>).heraldRateWeighted)
      redis.defineCommand('heraldRateWeighted', { numberOfKeys: 1, lua: LUA });
    this.redis = redis;
  }

  /** Spends `n` of `key`'s window; `ok` false when it does not fit (`ttlMs`: until the window ends). */
  async spend(
    key: string,
    n: number,
    max: number,
    windowMs: number,
  ): Promise<{ ok: boolean; ttlMs: number }> {
    const [ok, ttl] = await this.redis.heraldRateWeighted(key, n, max, windowMs);
    return { ok: ok === 1, ttlMs: Math.max(0, ttl) };
  }
}
