import { BROADCAST, topicStream } from '@herald/protocol';
import { type BellParts, inboxBellParts, streamBellParts } from './doorbell.js';
import type { NewEntry } from './entry.js';
import type { Keys, StreamKeys } from './keys.js';
import { isCluster, type RedisClient } from './redis.js';
import { withScripts } from './scripts.js';
import type { StreamLimits } from './streams.js';

export interface Delivered {
  seq: number;
  /** Devices it is addressed to: 1, or the topic's members, or every known device. */
  targets: number;
}

/**
 * A direct publish to one device, a topic or everyone as ONE script call (deliver.lua): append,
 * status `sent` with its target count, doorbell. Only on one Redis (or Sentinel): on a cluster
 * the status and the stream live in different slots, and the caller takes the step-by-step path
 * (Streams, StatusStore, ring.ts) instead.
 */
export class Delivery {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly limits: StreamLimits,
    /** How long a status outlives its notification's expiry. */
    private readonly statusKeepMs: number,
  ) {
    this.redis = withScripts(redis);
  }

  /** False on a Redis Cluster, where one script cannot touch the stream and the status. */
  get available(): boolean {
    return !isCluster(this.redis);
  }

  toDevice(device: string, entry: NewEntry, now = Date.now()): Promise<Delivered> {
    const k = this.keys.inbox(device);
    return this.call(
      k,
      this.keys.presence(device),
      entry,
      'devices',
      this.limits.inboxMaxLen,
      now,
      inboxBellParts(device, entry),
      this.keys.nodeChannelPrefix(),
    );
  }

  toTopic(topic: string, entry: NewEntry, now = Date.now()): Promise<Delivered> {
    return this.call(
      this.keys.topic(topic),
      this.keys.topicMembers(topic),
      entry,
      'topic',
      this.limits.topicMaxLen,
      now,
      streamBellParts(topicStream(topic), entry),
      this.keys.topicChannel(topic),
    );
  }

  toBroadcast(entry: NewEntry, now = Date.now()): Promise<Delivered> {
    return this.call(
      this.keys.broadcast(),
      this.keys.allDevices(),
      entry,
      'broadcast',
      this.limits.topicMaxLen,
      now,
      streamBellParts(BROADCAST, entry),
      this.keys.broadcastChannel(),
    );
  }

  private async call(
    k: StreamKeys,
    audience: string,
    entry: NewEntry,
    target: 'devices' | 'topic' | 'broadcast',
    maxLen: number,
    now: number,
    bell: BellParts,
    channel: string,
  ): Promise<Delivered> {
    const [seq, targets] = await this.redis.heraldDeliver(
      k.stream,
      k.seq,
      audience,
      this.keys.status(entry.id),
      entry.id,
      entry.data,
      entry.ts,
      entry.exp,
      maxLen,
      now,
      this.limits.keepMs,
      entry.exp + this.statusKeepMs,
      target,
      bell.head,
      bell.tail,
      channel,
    );
    return { seq: Number(seq), targets: Number(targets) };
  }
}
