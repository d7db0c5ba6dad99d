import type { Target } from '@herald/protocol';
import type { Delivery, DeliveryTarget, Keys, NewEntry } from '@herald/store';

export interface DirectPublisherDeps {
  /** The store's one delivery door, on the API's 'request' connection (fails fast while Redis is down). */
  delivery: Delivery;
  /** Longest `devices` list appended here; longer lists go through the queue. */
  maxDevices: number;
}

/**
 * Direct publish: an immediate notification whose fan-out is O(1) Redis work (a topic, the
 * broadcast stream, a few device inboxes) is delivered by the API itself, through the same
 * store door as the worker's fan-out. It is as durable as a queued job (both are Redis writes,
 * acked before the 202) and skips the queue hop: on one Redis one script call (append, status
 * `sent` with its target count, doorbell) for one device, a topic or everyone.
 *
 * Order: appends happen in the order requests reach this process, so two publishes to one
 * target are appended in accept order (and a 202 received before the next publish is sent
 * means that one comes first). Queued publishes (scheduled, users, long device lists) are not
 * ordered against direct ones (docs/guarantees.md).
 */
export class DirectPublisher {
  constructor(private readonly d: DirectPublisherDeps) {}

  /** The direct publisher of another app (its delivery on the app's keys). */
  forKeys(keys: Keys): DirectPublisher {
    const delivery = this.d.delivery.forKeys(keys);
    return delivery === this.d.delivery ? this : new DirectPublisher({ ...this.d, delivery });
  }

  /** Whether `to` is cheap enough to fan out in the request. */
  takes(to: Target): to is DeliveryTarget {
    return !('users' in to) && (!('devices' in to) || to.devices.length <= this.d.maxDevices);
  }

  /**
   * Delivers now and records the status as `sent`. Where the writes are several steps (a
   * cluster, or several devices) and this process dies in between, the entry is in the streams
   * (delivered on the next read) and a retry with the same Idempotency-Key delivers it again
   * under the same id, which the SDK drops as a duplicate (at-least-once).
   */
  async publish(entry: NewEntry, to: DeliveryTarget): Promise<void> {
    await this.d.delivery.deliver(to, entry, 'sent');
  }
}
