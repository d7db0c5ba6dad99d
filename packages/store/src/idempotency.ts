import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

export type IdempotencyClaim = { fresh: true } | { fresh: false; id: string; sameBody: boolean };

/** `Idempotency-Key` records: key -> (notification id, body hash) for a window. */
export class Idempotency {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly windowMs: number,
  ) {
    this.redis = withScripts(redis);
  }

  /** The same store for another app's keys (`keys.forApp(id)`): Idempotency-Keys are per app. */
  withKeys(keys: Keys): Idempotency {
    return keys === this.keys ? this : new Idempotency(this.redis, keys, this.windowMs);
  }

  /** Atomically claims `key` for `id`, or reports the id that already holds it. */
  async claim(scope: string, key: string, id: string, bodyHash: string): Promise<IdempotencyClaim> {
    const r = await this.redis.heraldIdempotency(
      this.keys.idempotency(scope, key),
      id,
      bodyHash,
      this.windowMs,
    );
    if (r[0] === 'new') return { fresh: true };
    return { fresh: false, id: r[1] as string, sameBody: r[2] === bodyHash };
  }

  /**
   * Gives a key back when the publish it was claimed for (`id`) could not be accepted; a key that
   * names another notification by now is left alone.
   */
  async release(scope: string, key: string, id: string): Promise<boolean> {
    return (await this.redis.heraldIdempotencyRelease(this.keys.idempotency(scope, key), id)) === 1;
  }
}
