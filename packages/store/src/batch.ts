import { isCluster, type RedisClient } from './redis.js';

type Arg = string | number;

/** Keys per script call on one Redis: big enough to save round trips, small enough not to block Redis. */
export const KEYS_PER_CALL = 200;

/**
 * Calls a multi-key script (`numKeys, keys..., head..., per-key args...`) over many keys: up to
 * KEYS_PER_CALL keys per call on one Redis, one key per call on a cluster, where a script's keys
 * must share a slot. The calls go out together (auto-pipelined).
 */
export async function callPerKeyBatches(
  redis: RedisClient,
  items: readonly (readonly [key: string, args: readonly Arg[]])[],
  head: readonly Arg[],
  call: (numKeys: number, ...keysAndArgs: Arg[]) => Promise<unknown>,
): Promise<void> {
  const size = isCluster(redis) ? 1 : KEYS_PER_CALL;
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < items.length; i += size) {
    const part = items.slice(i, i + size);
    const args: Arg[] = part.map(([key]) => key);
    args.push(...head);
    for (const [, a] of part) args.push(...a);
    calls.push(call(part.length, ...args));
  }
  await Promise.all(calls);
}
