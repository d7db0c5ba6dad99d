import type { CountDelta, Devices, StatusStore } from '@herald/store';
import type { Logger } from 'pino';

/** Above this many pending ids or devices a flush runs at once instead of waiting for the timer. */
const MAX_PENDING = 50_000;

/**
 * Aggregates delivered/acked counts per notification and acked cursors per device, and writes
 * them to Redis in one pipeline per interval: no Redis round trip per ack or per delivery.
 */
export class Flusher {
  private counts = new Map<string, CountDelta>();
  private cursors = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly status: StatusStore,
    private readonly devices: Devices,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  delivered(id: string, n = 1): void {
    const c = this.counts.get(id);
    if (c) c.delivered += n;
    else this.counts.set(id, { delivered: n, acked: 0 });
    if (this.counts.size > MAX_PENDING) void this.flush();
  }

  acked(id: string): void {
    const c = this.counts.get(id);
    if (c) c.acked++;
    else this.counts.set(id, { delivered: 0, acked: 1 });
    if (this.counts.size > MAX_PENDING) void this.flush();
  }

  cursor(device: string, stream: string, seq: number): void {
    const m = this.cursors.get(device);
    if (!m) this.cursors.set(device, new Map([[stream, seq]]));
    else if ((m.get(stream) ?? -1) < seq) m.set(stream, seq);
    if (this.cursors.size > MAX_PENDING) void this.flush();
  }

  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.counts.size === 0 && this.cursors.size === 0) return;
    const counts = this.counts;
    const cursors = this.cursors;
    this.counts = new Map();
    this.cursors = new Map();
    this.flushing = Promise.all([this.status.addCounts(counts), this.devices.advanceCursors(cursors)])
      .then(() => undefined)
      .catch((err: Error) => {
        // Counts are statistics and cursors a resume hint (the client's own cursors win), so a
        // failed flush is retried once by merging back, within the bound, and then dropped.
        this.log.warn({ err: err.message }, 'flush failed; will retry');
        if (this.counts.size + counts.size <= MAX_PENDING) {
          for (const [id, d] of counts) {
            const c = this.counts.get(id);
            if (c) {
              c.delivered += d.delivered;
              c.acked += d.acked;
            } else this.counts.set(id, d);
          }
          for (const [dev, m] of cursors) for (const [s, seq] of m) this.cursor(dev, s, seq);
        }
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }
}
