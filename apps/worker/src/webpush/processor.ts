import { createHash } from 'node:crypto';
import type { WebPushJob } from '@herald/protocol';
import {
  type Devices,
  type DueDevice,
  type DueQuery,
  type Keys,
  type StatusStore,
  type StoredSubscription,
  WEBPUSH_JOB,
  type WebhookEvent,
  type WebhookOutbox,
  type WebPushStore,
  webpushJobOptions,
} from '@herald/store';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { PushOutcome, PushRequest, WebPushSender } from './sender.js';

/** The parts of one app (docs/tenancy.md: each app has its own Keys; absent app = default). */
export interface AppStores {
  keys: Keys;
  webpush: WebPushStore;
  devices: Devices;
  status: StatusStore;
  /** The app's own VAPID pair's sender (apps file `vapid`); absent: the processor's. */
  sender?: WebPushSender;
  /** The app's webhook outbox (docs/webhooks.md): pushed / failed events go there. */
  outbox?: WebhookOutbox;
}

/** Most webhook events one check job records (one per device pushed or failed; a chunk is smaller). */
const MAX_PUSH_EVENTS = 10_000;

/** Where the processor schedules its retries (the webpush queue). */
export interface RetryQueue {
  add(name: string, data: WebPushJob, opts: ReturnType<typeof webpushJobOptions>): Promise<unknown>;
}

export interface WebPushObserver {
  /** One push request's outcome and how long the push service took. */
  sent(outcome: PushOutcome['result'], seconds: number): void;
  /** Redis round trips of the check (script calls and SSCANs). */
  redisCalls(n: number): void;
}

export interface WebPushProcessorDeps {
  stores: (app: string | undefined) => AppStores;
  /** HERALD_VAPID_*: for apps without their own pair (absent: every app must have one). */
  sender?: WebPushSender;
  retries: RetryQueue;
  /** Devices per check call (HERALD_FANOUT_CHUNK). */
  chunk: number;
  /** Push requests in flight per job (HERALD_WEBPUSH_CONCURRENCY). */
  concurrency: number;
  maxAttempts: number;
  retryMs: number;
  log: Logger;
  observer?: WebPushObserver;
  /** Webhook event types the app's endpoints want (docs/webhooks.md); absent or empty: none recorded. */
  webhookEvents?: (app: string | undefined) => ReadonlySet<string> | undefined;
}

export interface WebPushResult {
  checked: number;
  pushed: number;
  failed: number;
  retrying: number;
}

/**
 * The fallback (docs/webpush.md): a check job runs `after` seconds after the delivery, asks
 * Redis in ONE script call per chunk of devices which of them have a subscription and have not
 * acked the entry (their cursor on its stream is below its seq), and pushes to those only.
 * Nothing else is read per device. 404/410 removes the subscription; 429, 5xx and no answer
 * become a new delayed job for just those subscriptions (honouring Retry-After), which checks
 * the cursor again first: a device that acked meanwhile is not pushed.
 */
export class WebPushProcessor {
  constructor(private readonly d: WebPushProcessorDeps) {}

  async process(job: Pick<Job<WebPushJob>, 'data'>, now = Date.now()): Promise<WebPushResult> {
    const j = checkJob(job.data);
    const out: WebPushResult = { checked: 0, pushed: 0, failed: 0, retrying: 0 };
    if (j.exp <= now) return out; // expired: nobody may get it any more, by any path
    const app = this.d.stores(j.app);
    const sender = app.sender ?? this.d.sender;
    if (!sender) throw new UnrecoverableError(`app ${j.app ?? 'default'} has no VAPID keys`);
    const retry = new Map<string, { seq: number; ids: string[] }>();
    let retryAfter = 0;
    // notification.pushed / push.failed for the app's webhooks, appended with the counts.
    const wants = this.d.webhookEvents?.(j.app);
    const events: WebhookEvent[] = [];
    const event = (
      type: 'notification.pushed' | 'push.failed',
      device: string,
      data: Record<string, unknown>,
    ) => {
      if (!wants?.has(type) || events.length >= MAX_PUSH_EVENTS) return;
      events.push({
        id: `evt_${createHash('sha256')
          .update(`${type}\n${j.id}\n${device}\n${j.attempt ?? 1}`)
          .digest('base64url')
          .slice(0, 24)}`,
        type,
        ts: Date.now(),
        data: { notification: j.id, device, ...data },
      });
    };
    const request: PushRequest = {
      message: j.message,
      ttlS: 0,
      ...(j.urgency ? { urgency: j.urgency } : {}),
      ...(j.pushTopic ? { topic: j.pushTopic } : {}),
    };

    const check = async (queries: DueQuery[]) => {
      out.checked += queries.length;
      const before = app.webpush.roundTrips;
      const due = await app.webpush.due(queries);
      this.d.observer?.redisCalls(app.webpush.roundTrips - before);
      const sends: [DueDevice, StoredSubscription][] = [];
      for (const dev of due)
        for (const sub of dev.subscriptions)
          if (!j.only || j.only[dev.device]?.includes(sub.id)) sends.push([dev, sub]);
      await eachLimit(sends, this.d.concurrency, async ([dev, sub]) => {
        // TTL: what is left of the notification's life when this message leaves.
        const ttlS = (j.exp - Date.now()) / 1000;
        if (ttlS <= 0) return;
        const started = process.hrtime.bigint();
        const r = await sender.send(sub, { ...request, ttlS });
        this.d.observer?.sent(r.result, Number(process.hrtime.bigint() - started) / 1e9);
        if (r.result === 'sent') {
          out.pushed++;
          event('notification.pushed', dev.device, { status: r.status });
        } else if (r.result === 'retry') {
          const e = retry.get(dev.device) ?? { seq: dev.seq, ids: [] };
          e.ids.push(sub.id);
          retry.set(dev.device, e);
          retryAfter = Math.max(retryAfter, r.retryAfterMs);
        } else {
          out.failed++;
          event('push.failed', dev.device, {
            status: r.status,
            reason: r.result === 'failed' ? r.reason : 'subscription gone',
          });
          if (r.result === 'gone') await app.webpush.remove(dev.device, sub.id);
          this.d.log.info(
            { id: j.id, device: dev.device, host: hostOf(sub.endpoint), status: r.status, result: r.result },
            'web push not delivered',
          );
        }
      });
    };

    if (j.items) {
      for (let i = 0; i < j.items.length; i += this.d.chunk)
        await check(
          j.items.slice(i, i + this.d.chunk).map(([device, seq]) => ({ device, stream: j.stream, seq })),
        );
    } else if (j.topic !== undefined && j.seq !== undefined) {
      const seq = j.seq;
      let pending: DueQuery[] = [];
      for await (const batch of app.devices.membersOfTopic(j.topic, this.d.chunk)) {
        this.d.observer?.redisCalls(1);
        for (const device of batch) pending.push({ device, stream: j.stream, seq });
        if (pending.length >= this.d.chunk) {
          await check(pending);
          pending = [];
        }
      }
      if (pending.length > 0) await check(pending);
    }

    if (retry.size > 0) {
      const attempt = (j.attempt ?? 1) + 1;
      const count = [...retry.values()].reduce((n, e) => n + e.ids.length, 0);
      if (attempt > this.d.maxAttempts) {
        out.failed += count;
        for (const device of retry.keys()) event('push.failed', device, { reason: 'retries exhausted' });
      } else {
        out.retrying = count;
        await this.scheduleRetry(j, retry, attempt, retryAfter);
      }
    }
    await Promise.all([
      app.status.addPushes(j.id, out.pushed, out.failed),
      events.length > 0 ? app.outbox?.append(events) : undefined,
    ]);
    return out;
  }

  private async scheduleRetry(
    j: WebPushJob,
    retry: Map<string, { seq: number; ids: string[] }>,
    attempt: number,
    retryAfterMs: number,
  ): Promise<void> {
    const items: [string, number][] = [];
    const only: Record<string, string[]> = {};
    for (const [device, e] of retry) {
      items.push([device, e.seq]);
      only[device] = e.ids;
    }
    const backoff = this.d.retryMs * 2 ** (attempt - 2);
    const delay = Math.max(backoff, retryAfterMs);
    const { topic: _t, seq: _s, ...rest } = j;
    const next: WebPushJob = { ...rest, items, only, attempt };
    const hash = createHash('sha256').update(JSON.stringify(items)).digest('hex').slice(0, 12);
    await this.d.retries.add(WEBPUSH_JOB, next, webpushJobOptions(`wp.${j.id}.r${attempt}.${hash}`, delay));
    this.d.log.info({ id: j.id, attempt, delayMs: delay, subscriptions: only }, 'web push retry scheduled');
  }
}

function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).host;
  } catch {
    return '';
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  });
  await Promise.all(lanes);
}

/** Job data comes from this worker's own fan-out; malformed data is a bug that retrying cannot fix. */
function checkJob(d: unknown): WebPushJob {
  const j = d as Partial<WebPushJob> | null;
  const bad = (why: string): never => {
    throw new UnrecoverableError(`malformed web push job: ${why}`);
  };
  if (typeof j !== 'object' || j === null) return bad('not an object');
  if (typeof j.id !== 'string' || typeof j.stream !== 'string' || typeof j.message !== 'string')
    bad('id, stream and message');
  if (typeof j.exp !== 'number') bad('exp');
  if (!Array.isArray(j.items) && (typeof j.topic !== 'string' || typeof j.seq !== 'number'))
    bad('items or topic and seq');
  return j as WebPushJob;
}
