import { Redis, type RedisOptions } from 'ioredis';

export type RedisRole =
  /** Request paths (API): fail fast while Redis is down so callers get 503, not a hang. */
  | 'request'
  /** Background work (nodes, worker): queue commands while reconnecting. */
  | 'background'
  /** Pub/sub subscriber connection. */
  | 'subscriber'
  /** BullMQ Worker/QueueEvents connections, which require maxRetriesPerRequest: null. */
  | 'bullmq';

/** Creates an ioredis connection with options suited to its role; the caller owns and closes it. */
export function createRedis(url: string, role: RedisRole, name = 'herald'): Redis {
  const base: RedisOptions = {
    connectionName: `${name}:${role}`,
    // Reconnect with capped backoff, forever: Redis coming back must heal every process.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectTimeout: 5000,
    keepAlive: 10_000,
  };
  switch (role) {
    case 'request':
      return new Redis(url, {
        ...base,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: 3000,
      });
    case 'background':
      return new Redis(url, { ...base, maxRetriesPerRequest: 20 });
    case 'subscriber':
      return new Redis(url, { ...base, maxRetriesPerRequest: null });
    case 'bullmq':
      return new Redis(url, { ...base, maxRetriesPerRequest: null });
  }
}
