import { BROADCAST, type Target, targetKind, topicStream } from '@herald/protocol';
import {
  type Delivery,
  type Devices,
  type Keys,
  type NewEntry,
  type RedisClient,
  ringInboxes,
  ringStream,
  type StatusStore,
  type Streams,
} from '@herald/store';

export interface DirectPublisherDeps {
  streams: Streams;
  devices: Devices;
  status: StatusStore;
  /** Connection for appends, PUBLISH and status (a 'request' one: fails fast while Redis is down). */
  redis: RedisClient;
  keys: Keys;
  /** One script call per publish on one Redis (`delivery.available`); step by step otherwise. */
  delivery: Delivery;
  /** Longest `devices` list appended here; longer lists go through the queue. */
  maxDevices: number;
}

/**
 * Direct publish: an immediate notification whose fan-out is O(1) Redis work (a topic, the
 * broadcast stream, a few device inboxes) is appended and rung by the API itself, with the same
 * writes the worker would make. It is as durable as a queued job (both are Redis writes, acked
 * before the 202) and skips the queue hop: one round trip to append, one to ring and record.
 *
 * Order: appends happen in the order requests reach this process, so two publishes to one
 * target are appended in accept order (and a 202 received before the next publish is sent
 * means that one comes first). Queued publishes (scheduled, users, long device lists) are not
 * ordered against direct ones (docs/guarantees.md).
 */
export class DirectPublisher {
  constructor(private readonly d: DirectPublisherDeps) {}

  /** Whether `to` is cheap enough to fan out in the request. */
  takes(to: Target): boolean {
    return !('users' in to) && (!('devices' in to) || to.devices.length <= this.d.maxDevices);
  }

  /**
   * Appends, then records the status as `sent` with its target count and rings the nodes.
   * The status is written after the append: if this process dies in between, the entry is in
   * the streams (delivered on the next read) and a retry with the same Idempotency-Key appends
   * it again under the same id, which the SDK drops as a duplicate (at-least-once).
   */
  async publish(entry: NewEntry, to: Target): Promise<void> {
    const { streams, devices, status, redis, keys, delivery } = this.d;
    if (delivery.available) {
      // One device, a topic or everyone: append, status and doorbell in one script call.
      if (!('devices' in to)) {
        await ('topic' in to ? delivery.toTopic(to.topic, entry) : delivery.toBroadcast(entry));
        return;
      }
      if (to.devices.length === 1) {
        await delivery.toDevice(to.devices[0] as string, entry);
        return;
      }
    }
    const recordSent = (targets: number) =>
      status.create(entry.id, {
        state: 'sent',
        target: targetKind(to),
        createdAt: entry.ts,
        exp: entry.exp,
        targets,
      });
    if ('devices' in to) {
      const appended = await streams.appendInboxes(to.devices, entry);
      // Status before the doorbells on the same connection: counts flushed by nodes find it.
      await Promise.all([recordSent(to.devices.length), ringInboxes(redis, keys, entry, appended)]);
      return;
    }
    const [seq, targets] =
      'topic' in to
        ? await Promise.all([streams.appendTopic(to.topic, entry), devices.topicMemberCount(to.topic)])
        : await Promise.all([streams.appendBroadcast(entry), devices.deviceCount()]);
    const [channel, stream] =
      'topic' in to
        ? [keys.topicChannel(to.topic), topicStream(to.topic)]
        : [keys.broadcastChannel(), BROADCAST];
    await Promise.all([recordSent(targets), ringStream(redis, channel, stream, seq, entry)]);
  }
}
