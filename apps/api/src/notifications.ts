// Over 400 lines because one publish's lifecycle (prepare, accept on the direct or queued path,
// Idempotency-Key replays, batches, status and cancel) shares its private steps; split by concern
// when it grows further.
import { createHash } from 'node:crypto';
import type { FanoutJob, NotificationState, NotificationStatus, TargetKind } from '@herald/protocol';
import { pushMessageText, targetKind } from '@herald/protocol';
import {
  FANOUT_JOB,
  fanoutJobOptions,
  type Idempotency,
  type Keys,
  type RedisClient,
  type ReplicaGate,
  type StatusStore,
  type WebhookExpiries,
} from '@herald/store';
import type { Queue } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import type { ApiConfig } from './config.js';
import type { DirectPublisher } from './direct.js';
import {
  AlreadySent,
  IdempotencyConflict,
  IdempotencyInProgress,
  isRedisOutage,
  NotFound,
  RedisUnavailable,
} from './errors.js';
import { notificationId } from './ids.js';
import { entryOptions, type Prepared, preparePublish, pushTopicOf, type WebhookMark } from './prepare.js';
import type { PublishBody } from './schemas.js';
import { sleep, withTimeout } from './timeout.js';

export type FanoutQueue = Queue<FanoutJob>;

export interface PublishResult {
  id: string;
  status: NotificationState;
}

/** Redis steps of one accept (status, job add or a direct append), each bounded by queueTimeoutMs. */
const HOLDER_STEPS = 3;

/** The creation time (ms) in a UUIDv7 notification id (ids.ts); 0 for anything else. */
function idTime(id: string): number {
  const t = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  return Number.isFinite(t) ? t : 0;
}

export interface IdempotencyInput {
  /** Publisher scope (apiKeyId). */
  scope: string;
  key: string;
  /** sha256 of the request body as JSON. */
  bodyHash: string;
}

export interface NotificationServiceDeps {
  config: ApiConfig;
  /**
   * The app whose notifications these are (docs/tenancy.md): `status`, `idempotency` and
   * `direct` are on its keys, and its fan-out jobs say so. Absent: `default`.
   */
  app?: string;
  status: StatusStore;
  /** Notifications whose key wants `notification.expired` (docs/webhooks.md), on the app's keys. */
  expiries?: WebhookExpiries;
  idempotency: Idempotency;
  queue: FanoutQueue;
  /** Appends immediate, cheap publishes in the request (HERALD_DIRECT_PUBLISH); absent = queue everything. */
  direct?: DirectPublisher;
  log: FastifyBaseLogger;
  /**
   * HERALD_REDIS_MIN_REPLICAS for the queue path: the connections a queued accept writes on
   * (status, job). The direct path waits inside its Delivery.
   */
  replicas?: { gate: ReplicaGate; connections: RedisClient[] };
  /** Bound on each BullMQ call: the queue may wait for a connection instead of failing fast. */
  queueTimeoutMs: number;
  /** Called once per notification accepted (not for idempotent replays), e.g. to count it. */
  onAccepted?: (target: TargetKind, scheduled: boolean, path: 'direct' | 'queue') => void;
}

export interface BatchResult {
  /** Every item accepted. */
  complete: boolean;
  results: (PublishResult | { code: string; message: string })[];
}

/** One failed item of a batch, as the error body a single publish would have answered. */
function itemError(err: unknown, log: FastifyBaseLogger): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && e.code.startsWith('HERALD_') && typeof e.message === 'string')
    return { code: e.code, message: e.message };
  log.error({ err }, 'batch item failed');
  return { code: 'HERALD_INTERNAL', message: 'internal error' };
}

export function bodyHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

/** Publish, status and cancel: the notification lifecycle as the API sees it. */
export class NotificationService {
  /** The services of the other apps, by their Keys (one object per app: Keys.forApp caches). */
  private readonly apps = new WeakMap<Keys, NotificationService>();

  constructor(private readonly d: NotificationServiceDeps) {}

  /**
   * The same service for the app of `keys` (the request's `tenant.keys`): its statuses,
   * Idempotency-Keys and direct deliveries on the app's keys, its jobs carrying the app id. This
   * service itself for its own app (no new object per request).
   */
  forApp(keys: Keys): NotificationService {
    if (keys.appId === (this.d.app ?? 'default')) return this;
    let s = this.apps.get(keys);
    if (!s) {
      s = new NotificationService({
        ...this.d,
        app: keys.appId,
        status: this.d.status.withKeys(keys),
        expiries: this.d.expiries?.withKeys(keys),
        idempotency: this.d.idempotency.withKeys(keys),
        direct: this.d.direct?.forKeys(keys),
      });
      this.apps.set(keys, s);
    }
    return s;
  }

  async publish(
    body: PublishBody,
    idem?: IdempotencyInput,
    now = Date.now(),
    hook?: WebhookMark,
  ): Promise<PublishResult> {
    const p = preparePublish(body, now, this.d.config, this.d.app, hook);
    const id = notificationId(now);
    if (!idem) return this.accept(id, p, now);
    return this.publishOnce(id, p, idem, now);
  }

  /**
   * Publishes many notifications, in array order (per target, as one publish after another).
   * Any invalid item refuses the whole batch before anything is written. Items that then fail
   * (Redis) are reported per item; when every item failed, the first error is the answer.
   */
  async publishBatch(
    bodies: readonly PublishBody[],
    now = Date.now(),
    hook?: WebhookMark,
  ): Promise<BatchResult> {
    const prepared = bodies.map((body, i) => {
      try {
        return preparePublish(body, now, this.d.config, this.d.app, hook);
      } catch (err) {
        if (err instanceof Error) err.message = `notifications[${i}]: ${err.message}`;
        throw err;
      }
    });
    // Started in order in one tick: each accept issues its first Redis command before the next starts.
    const settled = await Promise.allSettled(prepared.map((p) => this.accept(notificationId(now), p, now)));
    const failed = settled.filter((r) => r.status === 'rejected');
    if (failed.length === settled.length) throw (failed[0] as PromiseRejectedResult).reason;
    const results = settled.map((r) =>
      r.status === 'fulfilled' ? r.value : itemError(r.reason, this.d.log),
    );
    return { complete: failed.length === 0, results };
  }

  /**
   * Publishes at most once per (scope, Idempotency-Key). A key held with the same body answers
   * with the held id once that publish has been accepted. A request that holds the key but died
   * before its publish was accepted is finished here, under the held id, once the holder is
   * certainly gone: its id (a UUIDv7) says when it claimed the key, and no holder runs longer
   * than its Redis bounds (queueTimeoutMs per step, plus a margin). The wait for that stays well
   * inside this request's own deadline; a holder still too young answers 409
   * HERALD_IDEMPOTENCY_IN_PROGRESS with Retry-After, and the retry resolves it.
   */
  private async publishOnce(
    id: string,
    p: Prepared,
    idem: IdempotencyInput,
    now: number,
  ): Promise<PublishResult> {
    const { idempotency, queueTimeoutMs } = this.d;
    const waitUntil = Date.now() + queueTimeoutMs * 0.7;
    for (;;) {
      const claim = await idempotency.claim(idem.scope, idem.key, id, idem.bodyHash);
      if (claim.fresh) {
        try {
          return await this.accept(id, p, now);
        } catch (err) {
          // A Redis outage or timeout does not say the write did not happen: a command that timed
          // out may still run when Redis answers again. The key stays with this id then, and a
          // retry either finds it accepted or, once this holder is certainly gone, finishes it
          // under the same id (below). Releasing it here let a retry publish a second copy under
          // a new id (found by the chaos campaign: test/chaos/idempotency-slow-redis.test.ts).
          // Any other failure (a refused command, a bug: a 500) gives the key back.
          if (!isRedisOutage(err))
            await idempotency.release(idem.scope, idem.key, id).catch((e: unknown) => {
              this.d.log.warn({ err: e }, 'could not release Idempotency-Key after a failed publish');
            });
          throw err;
        }
      }
      if (!claim.sameBody) throw new IdempotencyConflict(idem.key);
      const state = await this.acceptedState(claim.id);
      if (state) {
        // A replayed 202 promises what the first one would have: with HERALD_REDIS_MIN_REPLICAS
        // the held publish must be on the replicas (its first request may have answered 503
        // because it was not yet).
        await this.confirmReplicas();
        return { id: claim.id, status: state };
      }
      // With HERALD_REDIS_MIN_REPLICAS, the wait for the replicas is one more step.
      const steps = HOLDER_STEPS + (this.d.replicas?.gate.enabled ? 1 : 0);
      if (Date.now() >= idTime(claim.id) + queueTimeoutMs * steps + 1000) {
        // The holder is gone. The same body under the same id: BullMQ's jobId makes this a
        // no-op if the job did get queued, and a direct append of the same id is dropped by
        // clients (dedupe by id).
        this.d.log.warn(
          { id: claim.id },
          'completing an idempotent publish whose first request did not finish',
        );
        return this.accept(claim.id, p, Date.now());
      }
      if (Date.now() >= waitUntil) throw new IdempotencyInProgress(idem.key);
      await sleep(25);
    }
  }

  /** The state of an accepted notification, or undefined while its publish is still under way. */
  private async acceptedState(id: string): Promise<NotificationState | undefined> {
    const s = await this.d.status.get(id);
    if (!s) return undefined;
    if (s.state !== 'queued' && s.state !== 'scheduled') return s.state;
    // Status is written before the job: queued/scheduled counts only once the job is there.
    const job = await this.bounded(this.d.queue.getJob(id));
    return job ? s.state : undefined;
  }

  private async accept(id: string, p: Prepared, now: number): Promise<PublishResult> {
    const exp = (p.deliverAt ?? now) + p.ttlMs;
    const { direct } = this.d;
    if (direct && p.deliverAt === undefined && !p.push && direct.takes(p.to)) {
      await this.bounded(direct.publish({ id, data: p.data, ts: now, exp, ...entryOptions(p) }, p.to));
      // The status was written by the delivery: the key id joins it (one more call, only for
      // keys with webhook endpoints), with the expiry check when wanted.
      if (p.hook) await this.bounded(this.markHook(id, p.hook, exp, true));
      this.d.onAccepted?.(targetKind(p.to), false, 'direct');
      // Already appended, rung and recorded `sent`: the answer says so (docs/api.md).
      return { id, status: 'sent' };
    }
    const state: NotificationState = p.deliverAt !== undefined ? 'scheduled' : 'queued';
    // Status first: the worker moves it queued/scheduled -> sending, so it must exist before the job.
    await this.d.status.create(id, {
      state,
      target: targetKind(p.to),
      createdAt: now,
      exp,
      deliverAt: p.deliverAt,
      jobId: id,
      ...(p.hook ? { apiKey: p.hook.key } : {}),
    });
    if (p.hook?.expired) await this.markHook(id, p.hook, exp, false);
    const job: FanoutJob = { id, to: p.to, data: p.data, ts: now, exp, ...entryOptions(p) };
    // Jobs of the default app carry no app, as before apps (a worker reads none as default).
    if (this.d.app !== undefined && this.d.app !== 'default') job.app = this.d.app;
    if (p.push) {
      const { policy, stream } = p.push;
      job.push = {
        after: policy.after,
        message: pushMessageText(id, stream, policy, p.data),
        // Not given: the publish's priority is the Urgency, its collapseKey the Topic (docs/webpush.md).
        ...(policy.urgency || p.priority ? { urgency: policy.urgency ?? p.priority } : {}),
        ...(policy.topic || p.collapseKey
          ? { topic: policy.topic ?? pushTopicOf(p.collapseKey as string) }
          : {}),
      };
    }
    const delayMs = p.deliverAt !== undefined ? p.deliverAt - now : 0;
    await this.bounded(this.d.queue.add(FANOUT_JOB, job, fanoutJobOptions(id, delayMs, p.priority)));
    // On one Redis the job's connection alone would do (the status was written before it), on a
    // Cluster they are different shards: both, in parallel.
    await this.confirmReplicas();
    this.d.onAccepted?.(targetKind(p.to), state === 'scheduled', 'queue');
    return { id, status: state };
  }

  /** Records the publishing key (direct publishes) and the expiry a `notification.expired` event waits for. */
  private async markHook(id: string, hook: WebhookMark, exp: number, setKey: boolean): Promise<void> {
    await Promise.all([
      setKey ? this.d.status.setApiKey(id, hook.key) : undefined,
      hook.expired ? this.d.expiries?.add(id, exp) : undefined,
    ]);
  }

  /** HERALD_REDIS_MIN_REPLICAS: resolves once the writes so far are on the replicas, else 503. */
  private async confirmReplicas(): Promise<void> {
    const r = this.d.replicas;
    if (r?.gate.enabled) await r.gate.confirm(...r.connections);
  }

  async get(id: string): Promise<NotificationStatus> {
    const s = await this.d.status.get(id);
    if (!s) throw new NotFound(`no notification ${id}`);
    return s;
  }

  /**
   * Cancels a scheduled notification. The state change is the cancel: the worker moves
   * scheduled -> sending atomically too, so only one of them wins. Removing the delayed job
   * is tidying up; a job that stays (locked, or Redis hiccup) is skipped by the worker.
   */
  async cancel(id: string): Promise<{ id: string; state: 'cancelled' }> {
    const found = await this.d.status.transition(id, 'cancelled', ['scheduled']);
    if (found === '') throw new NotFound(`no notification ${id}`);
    if (found === 'scheduled') await this.removeJob(id);
    else if (found !== 'cancelled') throw new AlreadySent(id, found);
    return { id, state: 'cancelled' };
  }

  private async removeJob(id: string): Promise<void> {
    try {
      const job = await this.bounded(this.d.queue.getJob(id));
      if (job) await this.bounded(job.remove());
    } catch (err) {
      this.d.log.warn(
        { err, id },
        'cancelled, but the delayed job could not be removed; the worker will skip it',
      );
    }
  }

  /** Bounds a queue or direct publish call: a Redis that stops answering becomes a 503. */
  private bounded<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.d.queueTimeoutMs, () => new RedisUnavailable());
  }
}
