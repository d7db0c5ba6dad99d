import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * Which nodes hold a device's connections: a hash nodeId -> expiry ms per device. Fields are
 * written by a node's hello (`Devices.connect`, hello.lua) and refreshed by the node's heartbeat;
 * a dead node's fields expire by value (readers ignore and prune them) and the key itself expires
 * when nothing refreshes it.
 */
export class Presence {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly ttlMs: number,
  ) {}

  /** Removes `nodeId` from the presence of many devices, auto-pipelined (one write per tick). */
  async removeMany(devices: readonly string[], nodeId: string): Promise<void> {
    const r = this.redis;
    const calls: Promise<unknown>[] = [];
    for (const d of devices)
      calls.push(r.hdel(this.keys.presence(d), nodeId), r.hdel(this.keys.presenceAddr(d), nodeId));
    await Promise.all(calls);
  }

  /** Client address per node of the device's live connections. */
  async addresses(device: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.presenceAddr(device));
  }

  /**
   * Refreshes many devices in batches of `batch` (each one auto-pipelined round trip), so a node
   * with 50k sockets never holds Redis or its own memory for long.
   */
  async refresh(devices: Iterable<string>, nodeId: string, now = Date.now(), batch = 1000): Promise<void> {
    const r = this.redis;
    let calls: Promise<unknown>[] = [];
    for (const device of devices) {
      const k = this.keys.presence(device);
      calls.push(
        r.hset(k, nodeId, now + this.ttlMs),
        r.pexpire(k, this.ttlMs),
        r.pexpire(this.keys.presenceAddr(device), this.ttlMs),
      );
      if (calls.length >= batch * 3) {
        await Promise.all(calls);
        calls = [];
      }
    }
    await Promise.all(calls);
  }

  /** Nodes where the device is live now. */
  async nodesOf(device: string, now = Date.now()): Promise<string[]> {
    const h = await this.redis.hgetall(this.keys.presence(device));
    return Object.entries(h)
      .filter(([, exp]) => Number(exp) > now)
      .map(([node]) => node);
  }
}
