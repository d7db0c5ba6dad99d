import type { WebhookEndpoint } from '@herald/config';
import {
  type OutboxEntry,
  type StatusStore,
  WEBHOOK_JOB,
  type WebhookEvent,
  type WebhookExpiries,
  type WebhookJob,
  type WebhookOutbox,
  webhookJobOptions,
} from '@herald/store';
import type { Logger } from 'pino';
import { chunks, EventRouter } from './router.js';

/** The outbox consumer group of the webhook sender (the presence debouncer has its own). */
export const SENDER_GROUP = 'webhooks';
/** Outbox entries read per round (each up to OUTBOX_BATCH events). */
const READ_COUNT = 20;
/** An entry read by a consumer that has not acked it this long is taken over (the consumer died). */
const RECLAIM_IDLE_MS = 60_000;
const RECLAIM_EVERY_MS = 15_000;
/** notification.expired: expiries handled per round. */
const EXPIRY_BATCH = 500;

export interface PumpDeps {
  app: string;
  outbox: WebhookOutbox;
  status: StatusStore;
  expiries: WebhookExpiries;
  /** The app's endpoints now (apps reload). */
  endpoints(): readonly WebhookEndpoint[];
  /** Adds request jobs (BullMQ addBulk). */
  enqueue(
    jobs: { name: string; data: WebhookJob; opts: ReturnType<typeof webhookJobOptions> }[],
  ): Promise<unknown>;
  consumer: string;
  batch: number;
  attempts: number;
  retryMs: number;
  pollMs: number;
  log: Logger;
}

/**
 * One app's webhook pump: reads the app's outbox as the consumer group `webhooks`, routes each
 * entry's events to the endpoints that want them, adds one BullMQ job per request (at most
 * `batch` events) and acks the entry only once its jobs are added (a crash in between reads it
 * again: the job ids are derived from the entry, so nothing is added twice). It also turns due
 * expiries into `notification.expired` events.
 */
export class WebhookPump {
  private readonly router: EventRouter;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private lastReclaim = 0;
  private grouped = false;

  constructor(private readonly d: PumpDeps) {
    this.router = new EventRouter(async (ids) => {
      const found = await Promise.all(ids.map((id) => d.status.apiKey(id)));
      return found;
    });
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round()
        .then((more) => this.schedule(more ? 0 : this.d.pollMs))
        .catch((err: Error) => {
          this.d.log.warn({ app: this.d.app, err: err.message }, 'webhook pump round failed; retrying');
          this.schedule(Math.max(1000, this.d.pollMs));
        });
    }, ms);
    this.timer.unref();
  }

  /** One round; true when there may be more to read at once. */
  async round(): Promise<boolean> {
    const { outbox, consumer } = this.d;
    if (!this.grouped) {
      await outbox.ensureGroup(SENDER_GROUP);
      this.grouped = true;
    }
    await this.expired();
    let entries: OutboxEntry[] = [];
    const now = Date.now();
    if (now - this.lastReclaim >= RECLAIM_EVERY_MS) {
      this.lastReclaim = now;
      entries = await outbox.reclaim(SENDER_GROUP, consumer, RECLAIM_IDLE_MS, READ_COUNT);
    }
    if (entries.length === 0) entries = await outbox.read(SENDER_GROUP, consumer, READ_COUNT);
    for (const entry of entries) await this.handle(entry);
    return entries.length === READ_COUNT;
  }

  private async handle(entry: OutboxEntry): Promise<void> {
    const { app } = this.d;
    const routed = await this.router.route(this.d.endpoints(), entry.events);
    const jobs: { name: string; data: WebhookJob; opts: ReturnType<typeof webhookJobOptions> }[] = [];
    for (const [endpoint, events] of routed)
      chunks(events, this.d.batch).forEach((part, i) => {
        // Derived from the entry: the same request if the entry is read again after a crash.
        const msgId = `msg_${app}_${entry.id.replace('-', '_')}_${endpoint.id}_${i}`;
        jobs.push({
          name: WEBHOOK_JOB,
          data: { app, endpoint: endpoint.id, msgId, events: part },
          opts: webhookJobOptions(msgId, this.d.attempts, this.d.retryMs),
        });
      });
    if (jobs.length > 0) await this.d.enqueue(jobs);
    await this.d.outbox.ack(SENDER_GROUP, [entry.id]);
  }

  /**
   * Due expiries of notifications whose key wants `notification.expired`: one event each with
   * the devices that missed it (targets - delivered), when any did. The expiry is removed first
   * and only the worker whose ZREM removed it records the event, so two workers do not both.
   */
  private async expired(): Promise<void> {
    const wants = this.d.endpoints().some((e) => e.events.includes('notification.expired'));
    if (!wants) return;
    const { expiries, status } = this.d;
    const ids = await expiries.due(Date.now(), EXPIRY_BATCH);
    if (ids.length === 0) return;
    const mine = await expiries.take(ids);
    const counts = await Promise.all(mine.map((id) => status.counts(id)));
    const events: WebhookEvent[] = [];
    mine.forEach((id, i) => {
      const c = counts[i];
      if (!c) return;
      const missed = Math.max(0, c.targets - c.delivered);
      if (missed === 0) return;
      events.push({
        id: `evt_expired_${id}`,
        type: 'notification.expired',
        ts: Date.now(),
        data: { notification: id, missed, targets: c.targets, delivered: c.delivered },
      });
    });
    if (events.length > 0) await this.d.outbox.append(events);
  }
}
