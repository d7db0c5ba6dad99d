import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

/**
 * Which nodes hold a device's connections: a hash nodeId -> expiry ms per device. Fields are
 * refreshed by the node's heartbeat; a dead node's fields expire by value (readers ignore and
 * prune them) and the key itself expires when nothing refreshes it.
 */
export class Presence {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly ttlMs: number,
  ) {}

  async add(device: string, nodeId: string, address?: string, now = Date.now()): Promise<void> {
    const k = this.keys.presence(device);
    const p = this.redis
      .pipeline()
      .hset(k, nodeId, now + this.ttlMs)
      .pexpire(k, this.ttlMs);
    if (address) {
      const a = this.keys.presenceAddr(device);
      p.hset(a, nodeId, address).pexpire(a, this.ttlMs);
    }
    await p.exec();
  }

  async remove(device: string, nodeId: string): Promise<void> {
    await this.redis
      .pipeline()
      .hdel(this.keys.presence(device), nodeId)
      .hdel(this.keys.presenceAddr(device), nodeId)
      .exec();
  }

  /** Client address per node of the device's live connections. */
  async addresses(device: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.presenceAddr(device));
  }

  /** Refreshes many devices in pipelines of `batch`, so a node with 50k sockets never blocks Redis. */
  async refresh(devices: Iterable<string>, nodeId: string, now = Date.now(), batch = 1000): Promise<void> {
    let p = this.redis.pipeline();
    let n = 0;
    for (const device of devices) {
      const k = this.keys.presence(device);
      p.hset(k, nodeId, now + this.ttlMs)
        .pexpire(k, this.ttlMs)
        .pexpire(this.keys.presenceAddr(device), this.ttlMs);
      if (++n % batch === 0) {
        await p.exec();
        p = this.redis.pipeline();
      }
    }
    if (n % batch !== 0) await p.exec();
  }

  /** Nodes where the device is live now. */
  async nodesOf(device: string, now = Date.now()): Promise<string[]> {
    const h = await this.redis.hgetall(this.keys.presence(device));
    return Object.entries(h)
      .filter(([, exp]) => Number(exp) > now)
      .map(([node]) => node);
  }
}
