import type { Target } from '@herald/protocol';

/**
 * Keeps jobs for the same target in the order BullMQ handed them to this process (its FIFO, the
 * API's accept order) while jobs for other targets run concurrently. A job waits for every
 * earlier job that shares one of its keys. Keys are registered synchronously when the processor
 * is called, which BullMQ does in fetch order, so waits only point backwards and cannot cycle.
 * Across several worker processes there is no such order (see docs/guarantees.md).
 */
export class TargetOrder {
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * @param maxWaitMs how long a job waits for earlier ones at most: a job stuck on a Redis outage
   * must not hold every later job for its target, so past this bound order gives way to progress.
   */
  constructor(private readonly maxWaitMs = 5000) {}

  run<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const before: Promise<void>[] = [];
    for (const k of keys) {
      const t = this.tails.get(k);
      if (t) before.push(t);
    }
    let release!: () => void;
    const done = new Promise<void>((r) => {
      release = r;
    });
    for (const k of keys) this.tails.set(k, done);
    let timer: NodeJS.Timeout | undefined;
    const start = before.length
      ? Promise.race([
          Promise.all(before),
          new Promise<void>((r) => {
            timer = setTimeout(r, this.maxWaitMs);
          }),
        ])
      : Promise.resolve();
    return start.then(fn).finally(() => {
      clearTimeout(timer);
      release();
      for (const k of keys) if (this.tails.get(k) === done) this.tails.delete(k);
    });
  }

  /** Jobs in flight that hold keys (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}

/**
 * What a notification's order depends on: each device, each user (a user's devices are not known
 * before the fan-out, so a device publish and a user publish reaching the same device are not
 * ordered with each other), the topic, or the broadcast stream.
 */
export function orderKeys(to: Target, app = 'default'): string[] {
  // Apps have their own ids: the same name in two apps is two targets.
  const p = app === 'default' ? '' : `${app}/`;
  if ('devices' in to) return to.devices.map((d) => `${p}d:${d}`);
  if ('users' in to) return to.users.map((u) => `${p}u:${u}`);
  if ('topic' in to) return [`${p}t:${to.topic}`];
  return [`${p}b`];
}
