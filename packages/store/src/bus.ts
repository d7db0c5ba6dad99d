import { isCluster, type RedisClient } from './redis.js';

/**
 * Publishes a doorbell. On a Redis Cluster it uses sharded pub/sub (SPUBLISH), which sends the
 * message only to the shard owning the channel; classic PUBLISH would copy it to every shard.
 */
export function publish(redis: RedisClient, channel: string, message: string): Promise<unknown> {
  return isCluster(redis) ? redis.spublish(channel, message) : redis.publish(channel, message);
}

/** Subscribe side of the doorbells: SUBSCRIBE on one Redis, SSUBSCRIBE on a cluster. */
export class Subscriber {
  constructor(readonly redis: RedisClient) {}

  get sharded(): boolean {
    return isCluster(this.redis);
  }

  onMessage(fn: (channel: string, message: string) => void): void {
    this.redis.on(this.sharded ? 'smessage' : 'message', fn);
  }

  subscribe(...channels: string[]): Promise<unknown> {
    // SSUBSCRIBE takes channels of one slot only: one call per channel on a cluster.
    if (this.sharded) return Promise.all(channels.map((c) => this.redis.ssubscribe(c)));
    return this.redis.subscribe(...channels);
  }

  /**
   * Calls `fn` each time the subscriptions are back in place after a reconnect (or, on a cluster,
   * after a topology change), when doorbells may have been missed.
   */
  onResubscribed(fn: () => void, onError: (err: Error) => void): void {
    if (this.sharded) {
      this.redis.on('subscribersReady', fn);
      return;
    }
    let first = true;
    this.redis.on('ready', () => {
      if (first) {
        first = false;
        return;
      }
      // autoResubscribe re-sent SUBSCRIBE before 'ready'; a PING behind them on the same
      // connection returns once they are in place.
      this.redis.ping().then(fn, onError);
    });
  }

  unsubscribe(...channels: string[]): Promise<unknown> {
    if (this.sharded) return Promise.all(channels.map((c) => this.redis.sunsubscribe(c)));
    return this.redis.unsubscribe(...channels);
  }
}
