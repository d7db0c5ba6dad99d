import { BROADCAST, type Target, type TargetKind, topicStream } from '@herald/protocol';
import { publish } from './bus.js';
import type { Devices } from './devices.js';
import { type BellParts, encodeDoorbell, inboxBellParts, streamBellParts } from './doorbell.js';
import { entryOptionArgs, type NewEntry } from './entry.js';
import type { Keys, StreamKeys } from './keys.js';
import { Presence } from './presence.js';
import { isCluster, type RedisClient } from './redis.js';
import type { ReplicaGate } from './replicas.js';
import { withScripts } from './scripts.js';
import type { StatusStore } from './status.js';
import type { InboxAppend, Streams } from './streams.js';

/** What a delivery goes to: devices, a topic or everyone (users are resolved to devices by the worker). */
export type DeliveryTarget = Exclude<Target, { users: string[] }>;

/** How a delivery records itself in the notification's status. */
export type StatusRecord =
  /** A direct publish: nothing wrote the status yet; it is written `sent` with the target count. */
  | 'sent'
  /** A step of a worker's fan-out: the step's target count is added to the status the API created. */
  | 'count';

export interface Delivered {
  /**
   * Entries appended: one per device inbox, one for a topic or broadcast; a fan-out step run
   * again ('count') appends nothing where its first run did.
   */
  appended: number;
  /** Devices it is addressed to: the devices (deduplicated), the topic's members or every known device. */
  targets: number;
  /** Doorbell messages published: one per node holding one of the devices, or one on the stream's channel. */
  bells: number;
  /** Inbox deliveries: [device, seq of the entry in its inbox] (the Web Push check needs them). */
  seqs?: [string, number][];
  /** Topic and broadcast deliveries: the entry's seq on the stream. */
  seq?: number;
}

/**
 * The one door through which an entry is delivered (append to the target's streams, record the
 * status and its target count, ring the doorbells) and through which the backend changes a
 * device's topics. The API's direct publish, the worker's fan-out and the topic routes use it and
 * never ask which Redis they are on: `createDelivery` picks the implementation once, from the
 * connection `createRedis` built from REDIS_URL (after centrifuge's Broker: one interface, one
 * implementation per backend shape).
 */
export interface Delivery {
  /**
   * Appends `entry` to each device's inbox (duplicates dropped), or once to the topic or
   * broadcast stream, records the target count as `record` says, and rings the nodes. Status
   * before doorbells: delivery counts that nodes flush find it.
   */
  deliver(to: DeliveryTarget, entry: NewEntry, record: StatusRecord): Promise<Delivered>;
  /**
   * Subscribes a device to a topic (durable), from the topic's head unless the device already
   * has a cursor there, and tells the nodes holding the device.
   */
  subscribe(device: string, topic: string): Promise<void>;
  /** Unsubscribes a device from a topic, forgets its cursor there, and tells the nodes holding it. */
  unsubscribe(device: string, topic: string): Promise<void>;
  /** The same delivery for another app (`keys.forApp(id)`), one object per app (cached). */
  forKeys(keys: Keys): Delivery;
}

/** Per-app deliveries of a delivery built for one Keys. */
const appDeliveries = new WeakMap<DeliveryParts, WeakMap<Keys, Delivery>>();

/** The delivery of `parts` for another app's `keys`: its stores on those keys, cached per app. */
function deliveryFor(parts: DeliveryParts, keys: Keys, self: Delivery): Delivery {
  if (keys === parts.keys) return self;
  let m = appDeliveries.get(parts);
  if (!m) {
    m = new WeakMap();
    appDeliveries.set(parts, m);
  }
  let d = m.get(keys);
  if (!d) {
    d = createDelivery({
      ...parts,
      keys,
      streams: parts.streams.withKeys(keys),
      status: parts.status.withKeys(keys),
      devices: parts.devices.withKeys(keys),
    });
    m.set(keys, d);
  }
  return d;
}

/** The store parts a delivery is made of, on one connection (a 'request' one in the API). */
export interface DeliveryParts {
  redis: RedisClient;
  keys: Keys;
  streams: Streams;
  status: StatusStore;
  devices: Devices;
  /** HERALD_REDIS_MIN_REPLICAS: every delivery resolves only once that many replicas hold it. */
  replicas?: ReplicaGate;
}

/**
 * One script call per delivery on one Redis or Sentinel; step by step on a Redis Cluster, where a
 * stream, the status and a device's keys live in different slots and no script may span them.
 */
export function createDelivery(parts: DeliveryParts): Delivery {
  const delivery = isCluster(parts.redis) ? new SteppedDelivery(parts) : new ScriptedDelivery(parts);
  return parts.replicas?.enabled ? new ReplicatedDelivery(delivery, parts.redis, parts.replicas) : delivery;
}

function unique(devices: readonly string[]): string[] {
  return devices.length > 1 ? [...new Set(devices)] : [...devices];
}

/**
 * Step by step, for a Redis Cluster: the appends (auto-pipelined, per shard; a topic's member
 * count goes with its append), then the status and the doorbells together: two round trips.
 * Also used on one Redis for a list of several devices (see ScriptedDelivery).
 */
export class SteppedDelivery implements Delivery {
  private readonly presence: Presence;

  constructor(private readonly p: DeliveryParts) {
    // Only read here (nodesOf): the TTL is the nodes'.
    this.presence = new Presence(p.redis, p.keys, 0);
  }

  forKeys(keys: Keys): Delivery {
    return deliveryFor(this.p, keys, this);
  }

  async deliver(to: DeliveryTarget, entry: NewEntry, record: StatusRecord): Promise<Delivered> {
    const { streams, devices, redis, keys } = this.p;
    // A fan-out step ('count') appends at most once per id and stream, so a step run again
    // (retry, stalled job) appends no second copy. Its targets are counted again: the append and
    // the count are two round trips here, and a run that failed between them counted nothing.
    const once = record === 'count';
    if ('devices' in to) {
      const ids = unique(to.devices);
      const appended = await streams.appendInboxes(ids, entry, Date.now(), once);
      const [, bells] = await Promise.all([
        this.record(entry, 'devices', record, ids.length),
        ringInboxes(redis, keys, entry, appended),
      ]);
      const seqs = appended.map((a): [string, number] => [a.device, a.seq]);
      return { appended: appended.filter((a) => !a.dup).length, targets: ids.length, bells, seqs };
    }
    const k = 'topic' in to ? keys.topic(to.topic) : keys.broadcast();
    const [{ seq, dup }, targets] = await Promise.all([
      streams.appendShared(k, entry, Date.now(), once),
      'topic' in to ? devices.topicMemberCount(to.topic) : devices.deviceCount(),
    ]);
    const [channel, stream] =
      'topic' in to
        ? [keys.topicChannel(to.topic), topicStream(to.topic)]
        : [keys.broadcastChannel(), BROADCAST];
    await Promise.all([
      this.record(entry, 'topic' in to ? 'topic' : 'broadcast', record, targets),
      ringStream(redis, channel, stream, seq, entry),
    ]);
    return { appended: dup ? 0 : 1, targets, bells: 1, seq };
  }

  private record(entry: NewEntry, target: TargetKind, record: StatusRecord, targets: number) {
    const { status } = this.p;
    if (record === 'count') return status.addTargets(entry.id, targets);
    return status.create(entry.id, { state: 'sent', target, createdAt: entry.ts, exp: entry.exp, targets });
  }

  async subscribe(device: string, topic: string): Promise<void> {
    const { streams, devices, keys } = this.p;
    // Head before subscribing: the device gets everything published after this call began
    // (reading it after could skip an entry appended in between). A cursor it has is kept.
    const head = await streams.head(keys.topic(topic));
    await devices.subscribe(device, topic);
    await devices.initCursor(device, topicStream(topic), head);
    await this.ring('sub', device, topic);
  }

  async unsubscribe(device: string, topic: string): Promise<void> {
    await this.p.devices.unsubscribe(device, topic);
    await this.ring('unsub', device, topic);
  }

  private async ring(k: 'sub' | 'unsub', device: string, topic: string): Promise<void> {
    const nodes = await this.presence.nodesOf(device);
    const msg = encodeDoorbell({ k, device, topic });
    await Promise.all(nodes.map((node) => publish(this.p.redis, this.p.keys.nodeChannel(node), msg)));
  }
}

/**
 * One Redis or Sentinel: one script call per delivery to one device, a topic or everyone
 * (deliver.lua: append, status, doorbell) and per topic change (membership.lua). A list of
 * several devices takes the steps (two round trips whatever its length): one script per device
 * would ring a node once per device instead of once per list.
 */
export class ScriptedDelivery implements Delivery {
  private readonly redis: RedisClient;
  private readonly steps: SteppedDelivery;

  constructor(private readonly p: DeliveryParts) {
    this.redis = withScripts(p.redis);
    this.steps = new SteppedDelivery(p);
  }

  forKeys(keys: Keys): Delivery {
    return deliveryFor(this.p, keys, this);
  }

  async deliver(to: DeliveryTarget, entry: NewEntry, record: StatusRecord): Promise<Delivered> {
    const { keys } = this.p;
    if ('devices' in to) {
      const ids = unique(to.devices);
      const [device] = ids;
      if (ids.length !== 1 || device === undefined)
        return this.steps.deliver({ devices: ids }, entry, record);
      return this.call(keys.inbox(device), keys.presence(device), 'devices', record, entry, {
        maxLen: this.p.streams.limits.inboxMaxLen,
        bell: inboxBellParts(device, entry),
        channel: keys.nodeChannelPrefix(),
        device,
      });
    }
    const bell = { maxLen: this.p.streams.limits.topicMaxLen };
    if ('topic' in to)
      return this.call(keys.topic(to.topic), keys.topicMembers(to.topic), 'topic', record, entry, {
        ...bell,
        bell: streamBellParts(topicStream(to.topic), entry),
        channel: keys.topicChannel(to.topic),
      });
    return this.call(keys.broadcast(), keys.allDevices(), 'broadcast', record, entry, {
      ...bell,
      bell: streamBellParts(BROADCAST, entry),
      channel: keys.broadcastChannel(),
    });
  }

  private async call(
    k: StreamKeys,
    audience: string,
    target: Exclude<TargetKind, 'users'>,
    record: StatusRecord,
    entry: NewEntry,
    o: { maxLen: number; bell: BellParts; channel: string; device?: string },
    now = Date.now(),
  ): Promise<Delivered> {
    const { keys, streams, status } = this.p;
    const [seq, targets, bells, dup] = await this.redis.heraldDeliver(
      k.stream,
      k.seq,
      audience,
      keys.status(entry.id),
      keys.appendMark(k, entry.id),
      keys.collapse(k),
      entry.id,
      entry.data,
      entry.ts,
      entry.exp,
      o.maxLen,
      now,
      streams.limits.keepMs,
      target,
      record,
      entry.exp + status.keepMs,
      o.bell.head,
      o.bell.tail,
      o.channel,
      ...entryOptionArgs(entry),
    );
    const done: Delivered = { appended: dup === 1 ? 0 : 1, targets: Number(targets), bells: Number(bells) };
    if (target === 'devices') done.seqs = [[o.device ?? '', Number(seq)]];
    else done.seq = Number(seq);
    return done;
  }

  subscribe(device: string, topic: string): Promise<void> {
    return this.membership('sub', device, topic);
  }

  unsubscribe(device: string, topic: string): Promise<void> {
    return this.membership('unsub', device, topic);
  }

  private async membership(op: 'sub' | 'unsub', device: string, topic: string): Promise<void> {
    const { keys, devices } = this.p;
    await this.redis.heraldMembership(
      keys.deviceTopics(device),
      keys.topicMembers(topic),
      keys.cursors(device),
      keys.topic(topic).seq,
      keys.presence(device),
      op,
      device,
      topic,
      topicStream(topic),
      devices.retentionMs,
      Date.now(),
      keys.nodeChannelPrefix(),
      encodeDoorbell({ k: op, device, topic }),
    );
  }
}

/**
 * A Delivery whose deliveries (and topic changes) resolve only once the replicas confirm them,
 * on the connection the inner delivery wrote with: the single place where the API's direct
 * path and the worker's fan-out wait for replication.
 */
export class ReplicatedDelivery implements Delivery {
  constructor(
    private readonly inner: Delivery,
    private readonly redis: RedisClient,
    private readonly gate: ReplicaGate,
  ) {}

  forKeys(keys: Keys): Delivery {
    // The inner delivery was made with the same parts and gate: its per-app one is replicated.
    return this.inner.forKeys(keys);
  }

  async deliver(to: DeliveryTarget, entry: NewEntry, record: StatusRecord): Promise<Delivered> {
    const done = await this.inner.deliver(to, entry, record);
    await this.gate.confirm(this.redis);
    return done;
  }

  async subscribe(device: string, topic: string): Promise<void> {
    await this.inner.subscribe(device, topic);
    await this.gate.confirm(this.redis);
  }

  async unsubscribe(device: string, topic: string): Promise<void> {
    await this.inner.unsubscribe(device, topic);
    await this.gate.confirm(this.redis);
  }
}

/**
 * Rings the nodes that hold the devices of one appended chunk: ONE doorbell per node, listing
 * each of its devices with the seq it got, so a node with many of the chunk's devices gets one
 * message rather than one per device. Returns the number of messages published.
 */
async function ringInboxes(
  publisher: RedisClient,
  keys: Keys,
  entry: NewEntry,
  appended: readonly InboxAppend[],
): Promise<number> {
  const byNode = new Map<string, [device: string, seq: number][]>();
  for (const { device, seq, nodes } of appended) {
    for (const node of nodes) {
      const to = byNode.get(node);
      if (to) to.push([device, seq]);
      else byNode.set(node, [[device, seq]]);
    }
  }
  if (byNode.size === 0) return 0;
  // One round trip however many nodes there are.
  await Promise.all(
    [...byNode].map(([node, to]) =>
      publish(publisher, keys.nodeChannel(node), encodeDoorbell({ k: 'inbox', entry, to })),
    ),
  );
  return byNode.size;
}

/** Rings a shared stream (topic or broadcast) once on its channel; nodes fan out locally. */
async function ringStream(
  publisher: RedisClient,
  channel: string,
  stream: string,
  seq: number,
  entry: NewEntry,
): Promise<void> {
  await publish(publisher, channel, encodeDoorbell({ k: 'stream', stream, seq, entry }));
}
