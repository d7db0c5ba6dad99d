import { createHash } from 'node:crypto';
import type { WebPushSubscription } from '@herald/protocol';
import type { Keys } from './keys.js';
import { isCluster, type RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

/** A stored subscription with its id (first 16 hex of sha256(endpoint)). */
export interface StoredSubscription extends WebPushSubscription {
  id: string;
}

/** One device of a check: the entry's seq on `stream` for that device. */
export interface DueQuery {
  device: string;
  stream: string;
  seq: number;
}

export interface DueDevice {
  device: string;
  seq: number;
  subscriptions: StoredSubscription[];
}

export function subscriptionId(endpoint: string): string {
  return createHash('sha256').update(endpoint).digest('hex').slice(0, 16);
}

/**
 * Web Push subscriptions of devices (docs/webpush.md). Takes the `Keys` of the app it serves
 * (issue #18: one Keys per app), never a global one.
 */
export class WebPushStore {
  private readonly redis: RedisClient;
  /** Script calls and commands sent by `due` (the fallback's Redis round trips; a metric and a test read it). */
  roundTrips = 0;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly o: { maxPerDevice: number; retentionMs: number },
  ) {
    this.redis = withScripts(redis);
  }

  /** Stores (or refreshes) a subscription; the oldest goes when the device has `maxPerDevice`. */
  async put(device: string, sub: WebPushSubscription): Promise<StoredSubscription> {
    const id = subscriptionId(sub.endpoint);
    const json = JSON.stringify({ endpoint: sub.endpoint, keys: sub.keys, createdAt: sub.createdAt });
    await this.redis.heraldWebpushPut(
      this.keys.webpush(device),
      id,
      json,
      sub.createdAt,
      this.o.maxPerDevice,
      this.o.retentionMs,
    );
    return { id, ...sub };
  }

  /** Removes the subscription with this endpoint; true when there was one. */
  async removeEndpoint(device: string, endpoint: string): Promise<boolean> {
    return this.remove(device, subscriptionId(endpoint));
  }

  async remove(device: string, id: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.webpush(device), id)) > 0;
  }

  async list(device: string): Promise<StoredSubscription[]> {
    return parseSubscriptions(await this.redis.hgetall(this.keys.webpush(device)));
  }

  /**
   * The devices of `queries` that have a subscription and whose cursor on the stream is below
   * the seq: ONE script call for the whole list on one Redis (webpush-due.lua), one per device
   * on a cluster (a device's keys share a slot, two devices' do not; auto-pipelined).
   */
  async due(queries: readonly DueQuery[]): Promise<DueDevice[]> {
    if (queries.length === 0) return [];
    const parts = isCluster(this.redis) ? queries.map((q) => [q]) : [queries];
    const replies = await Promise.all(
      parts.map((part) => {
        this.roundTrips++;
        const keys = part.flatMap((q) => [this.keys.webpush(q.device), this.keys.cursors(q.device)]);
        const argv = part.flatMap((q) => [q.stream, q.seq]);
        return this.redis.heraldWebpushDue(keys.length, ...keys, ...argv);
      }),
    );
    const out: DueDevice[] = [];
    replies.forEach((reply, p) => {
      const part = parts[p] as readonly DueQuery[];
      for (const [index, fields] of reply) {
        const q = part[Number(index) - 1] as DueQuery;
        const map: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) map[fields[i] as string] = fields[i + 1] as string;
        out.push({ device: q.device, seq: q.seq, subscriptions: parseSubscriptions(map) });
      }
    });
    return out;
  }
}

function parseSubscriptions(h: Record<string, string>): StoredSubscription[] {
  const out: StoredSubscription[] = [];
  for (const [id, json] of Object.entries(h)) {
    try {
      const s = JSON.parse(json) as WebPushSubscription;
      if (typeof s.endpoint === 'string' && s.keys) out.push({ id, ...s });
    } catch {
      // a value this version did not write: skipped
    }
  }
  return out.sort((a, b) => a.createdAt - b.createdAt);
}
