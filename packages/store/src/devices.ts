import { type Target, topicStream } from '@herald/protocol';
import { callPerKeyBatches } from './batch.js';
import type { Keys } from './keys.js';
import type { PresenceTransport } from './presence.js';
import type { RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

/** Most members per SADD of a batched hello. */
const SADD_CHUNK = 1000;

/** What a node needs about a device when it says hello, read in one round trip. */
export interface DeviceSession {
  topics: string[];
  /** Last acked seq per stream, as stored by nodes from acks. */
  cursors: Record<string, number>;
}

/** One device saying hello on a node (see `Devices.connect`). */
export interface HelloRequest {
  device: string;
  user: string;
  /** Client address, kept beside presence for operators. */
  address?: string;
  /** What carries the connection, shown by the presence API (default `websocket`). */
  transport?: PresenceTransport;
}

export interface HelloSession extends DeviceSession {
  /** Inbox head seq, read atomically with the presence write. */
  inboxHead: number;
}

/**
 * Device registry, durable topic subscriptions and acked cursors. Subscriptions are durable so
 * a device that reconnects (to any node) keeps its topics and resumes them from its cursors.
 */
export class Devices {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    /** How long a device's registry entries live after its last hello or ack. */
    readonly retentionMs: number,
  ) {
    this.redis = withScripts(redis);
  }

  /** The same registry for another app's keys (`keys.forApp(id)`). */
  withKeys(keys: Keys): Devices {
    return keys === this.keys ? this : new Devices(this.redis, keys, this.retentionMs);
  }

  /**
   * Hellos of many devices on one node, in one round trip: per device one script (presence on
   * `nodeId` with the client address, transport and connect time, topics, cursors and inbox
   * head, atomically), per user one
   * SADD and PEXPIRE of the user's devices, and one SADD to the set of all devices per chunk.
   * All commands are issued synchronously, so they leave in one auto-pipelined write.
   */
  async connect(
    batch: readonly HelloRequest[],
    nodeId: string,
    presenceTtlMs: number,
    now = Date.now(),
  ): Promise<HelloSession[]> {
    const r = this.redis;
    const k = this.keys;
    const exp = now + presenceTtlMs;
    const hellos = batch.map(({ device: d, address, transport }) =>
      r.heraldHello(
        k.presence(d),
        k.presenceAddr(d),
        k.deviceTopics(d),
        k.cursors(d),
        k.inbox(d).seq,
        k.presenceInfo(d),
        nodeId,
        exp,
        presenceTtlMs,
        address ?? '',
        transport ?? 'websocket',
        now,
        this.retentionMs,
      ),
    );
    const byUser = new Map<string, string[]>();
    for (const { device, user } of batch) {
      const ds = byUser.get(user);
      if (ds) ds.push(device);
      else byUser.set(user, [device]);
    }
    const registry: Promise<unknown>[] = [];
    for (const [user, ds] of byUser) {
      const ud = k.userDevices(user);
      registry.push(r.sadd(ud, ...ds), r.pexpire(ud, this.retentionMs));
    }
    for (let i = 0; i < batch.length; i += SADD_CHUNK)
      registry.push(r.sadd(k.allDevices(), ...batch.slice(i, i + SADD_CHUNK).map((h) => h.device)));
    const [replies] = await Promise.all([Promise.all(hellos), Promise.all(registry)]);
    return replies.map(([topics, flat, head]) => {
      const cursors: Record<string, number> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) cursors[flat[i] as string] = Number(flat[i + 1]);
      return { topics, cursors, inboxHead: Number(head) };
    });
  }

  async subscribe(device: string, topic: string): Promise<void> {
    const dt = this.keys.deviceTopics(device);
    const r = this.redis;
    await Promise.all([
      r.sadd(dt, topic),
      r.pexpire(dt, this.retentionMs),
      r.sadd(this.keys.topicMembers(topic), device),
    ]);
  }

  async unsubscribe(device: string, topic: string): Promise<void> {
    const r = this.redis;
    await Promise.all([
      r.srem(this.keys.deviceTopics(device), topic),
      r.srem(this.keys.topicMembers(topic), device),
      r.hdel(this.keys.cursors(device), topicStream(topic)),
    ]);
  }

  async topicsOf(device: string): Promise<string[]> {
    return this.redis.smembers(this.keys.deviceTopics(device));
  }

  async topicMemberCount(topic: string): Promise<number> {
    return this.redis.scard(this.keys.topicMembers(topic));
  }

  async deviceCount(): Promise<number> {
    return this.redis.scard(this.keys.allDevices());
  }

  /**
   * How many devices `to` addresses now, without delivering: the distinct devices listed, the
   * devices each user has (summed; `batch` users per round trip), the topic's members, or every
   * device known (said hello within retention). Each is an O(1) SCARD per set.
   */
  async audience(to: Target, batch = 500): Promise<number> {
    if ('devices' in to) return new Set(to.devices).size;
    if ('topic' in to) return this.topicMemberCount(to.topic);
    if ('broadcast' in to) return this.deviceCount();
    const users = [...new Set(to.users)];
    let n = 0;
    for (let i = 0; i < users.length; i += batch) {
      const sizes = await Promise.all(
        users.slice(i, i + batch).map((u) => this.redis.scard(this.keys.userDevices(u))),
      );
      for (const size of sizes) n += size;
    }
    return n;
  }

  /** The acked cursor of one stream, if any. */
  async cursor(device: string, stream: string): Promise<number | undefined> {
    const v = await this.redis.hget(this.keys.cursors(device), stream);
    return v === null ? undefined : Number(v);
  }

  /**
   * Sets a stream cursor only when the device has none (new subscription starts at the head).
   * The cursors live `retentionMs` from here, as after an ack: a device subscribed by the backend
   * that never connects must not leave a hash without a TTL.
   */
  async initCursor(device: string, stream: string, seq: number): Promise<void> {
    const k = this.keys.cursors(device);
    await Promise.all([this.redis.hsetnx(k, stream, seq), this.redis.pexpire(k, this.retentionMs)]);
  }

  /** Moves acked cursors forward for many devices: a few script calls, one round trip. */
  async advanceCursors(acks: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<void> {
    const items: [string, (string | number)[]][] = [];
    for (const [device, streams] of acks) {
      const args: (string | number)[] = [streams.size];
      for (const [s, seq] of streams) args.push(s, seq);
      items.push([this.keys.cursors(device), args]);
    }
    await callPerKeyBatches(this.redis, items, [this.retentionMs], (n, ...a) =>
      this.redis.heraldCursor(n, ...a),
    );
  }

  /** Devices of a user, a batch at a time (SSCAN), so a user with many devices is never loaded whole. */
  async *devicesOfUser(user: string, batch = 500): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, members] = await this.redis.sscan(this.keys.userDevices(user), cursor, 'COUNT', batch);
      cursor = next;
      if (members.length > 0) yield members;
    } while (cursor !== '0');
  }

  /** Devices subscribed to a topic, a batch at a time (SSCAN): the Web Push check of a topic publish. */
  async *membersOfTopic(topic: string, batch = 500): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, members] = await this.redis.sscan(this.keys.topicMembers(topic), cursor, 'COUNT', batch);
      cursor = next;
      if (members.length > 0) yield members;
    } while (cursor !== '0');
  }
}
