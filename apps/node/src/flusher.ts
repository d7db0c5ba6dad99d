import { createHash } from 'node:crypto';
import type { CountDelta, Devices, StatusStore, WebhookEvent, WebhookOutbox } from '@herald/store';
import type { Logger } from 'pino';
import type { ReceiptAt } from './ports.js';

/** Above this many pending ids or devices a flush runs at once instead of waiting for the timer. */
const MAX_PENDING = 50_000;
/**
 * Most webhook events held between flushes (about 200 bytes each: 4 MB). Above it (Redis away
 * for several flushes at a high delivery rate) new events are dropped, counted and logged:
 * webhook events are a report, the counts and the streams stay the truth.
 */
export const MAX_PENDING_EVENTS = 20_000;

/** What the flusher needs to record webhook events: the app's outbox and the types it wants. */
export interface FlusherHooks {
  outbox: WebhookOutbox;
  /** The event types some endpoint of the app wants (NodeApp.webhookEvents); read per receipt. */
  wants(): ReadonlySet<string> | undefined;
}

/**
 * A delivered/acked event's id: the same for the same fact (the notification on the device),
 * so a redelivery after a reconnect is deduplicated by receivers like a retried request.
 */
function eventId(kind: string, id: string, device: string): string {
  return `evt_${createHash('sha256').update(`${kind}\n${id}\n${device}`).digest('base64url').slice(0, 24)}`;
}

/**
 * Aggregates delivered/acked counts per notification and acked cursors per device, and writes
 * them to Redis in one pipeline per interval: no Redis round trip per ack or per delivery. The
 * app's `notification.delivered` / `notification.acked` webhook events go with the same flush
 * (one XADD per batch of OUTBOX_BATCH events, docs/webhooks.md).
 */
export class Flusher {
  private counts = new Map<string, CountDelta>();
  private cursors = new Map<string, Map<string, number>>();
  private events: WebhookEvent[] = [];
  /** Webhook events dropped above MAX_PENDING_EVENTS since the last log line. */
  dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly status: StatusStore,
    private readonly devices: Devices,
    private readonly intervalMs: number,
    private readonly log: Logger,
    private readonly hooks?: FlusherHooks,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  delivered(id: string, at?: ReceiptAt, n = 1): void {
    const c = this.counts.get(id);
    if (c) c.delivered += n;
    else this.counts.set(id, { delivered: n, acked: 0 });
    if (at) this.event('notification.delivered', id, at);
    if (this.counts.size > MAX_PENDING) void this.flush();
  }

  acked(id: string, at?: ReceiptAt): void {
    const c = this.counts.get(id);
    if (c) c.acked++;
    else this.counts.set(id, { delivered: 0, acked: 1 });
    if (at) this.event('notification.acked', id, at);
    if (this.counts.size > MAX_PENDING) void this.flush();
  }

  private event(type: 'notification.delivered' | 'notification.acked', id: string, at: ReceiptAt): void {
    if (!this.hooks?.wants()?.has(type)) return;
    if (this.events.length >= MAX_PENDING_EVENTS) {
      this.dropped++;
      return;
    }
    const data: Record<string, unknown> = { notification: id, device: at.device, stream: at.stream };
    if (at.seq !== undefined) data.seq = at.seq;
    this.events.push({ id: eventId(type, id, at.device), type, ts: Date.now(), data });
  }

  cursor(device: string, stream: string, seq: number): void {
    const m = this.cursors.get(device);
    if (!m) this.cursors.set(device, new Map([[stream, seq]]));
    else if ((m.get(stream) ?? -1) < seq) m.set(stream, seq);
    if (this.cursors.size > MAX_PENDING) void this.flush();
  }

  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.dropped > 0) {
      this.log.warn({ dropped: this.dropped, bound: MAX_PENDING_EVENTS }, 'webhook events dropped');
      this.dropped = 0;
    }
    if (this.counts.size === 0 && this.cursors.size === 0 && this.events.length === 0) return;
    const counts = this.counts;
    const cursors = this.cursors;
    const events = this.events;
    this.counts = new Map();
    this.cursors = new Map();
    this.events = [];
    this.flushing = Promise.all([
      this.status.addCounts(counts),
      this.devices.advanceCursors(cursors),
      events.length > 0 ? this.hooks?.outbox.append(events) : undefined,
    ])
      .then(() => undefined)
      .catch((err: Error) => {
        // Counts are statistics and cursors a resume hint (the client's own cursors win), so a
        // failed flush is retried once by merging back, within the bound, and then dropped.
        // Events too (an XADD that did land is sent twice: receivers dedupe by event id).
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
        const room = MAX_PENDING_EVENTS - this.events.length;
        if (room < events.length) this.dropped += events.length - Math.max(0, room);
        if (room > 0) this.events.push(...events.slice(0, room));
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
