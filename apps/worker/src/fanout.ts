import { COLLAPSE_KEY_RE, type FanoutJob, type NotificationState } from '@herald/protocol';
import {
  APP_ID,
  type Delivered,
  type Delivery,
  type DeliveryTarget,
  type Devices,
  type NewEntry,
  type StatusStore,
} from '@herald/store';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';

export interface FanoutDeps {
  /** The store's delivery door (append, count the targets, ring), on a background connection. */
  delivery: Delivery;
  /** Users' devices, and the audience of a notification that expired before it was sent. */
  devices: Devices;
  status: StatusStore;
  /** Devices delivered per step (HERALD_FANOUT_CHUNK). */
  chunk: number;
  log: Logger;
  /** Told of every append and doorbell (metrics). */
  observer?: FanoutObserver;
  /** Schedules the Web Push check of each delivered step of a job with a `push` policy (docs/webpush.md). */
  push?: { afterDelivery(n: FanoutJob, to: DeliveryTarget, d: Delivered): Promise<void> };
}

/** What a fan-out reports as it goes, for metrics. */
export interface FanoutObserver {
  /** `n` entries appended: one per device inbox, one per topic or broadcast publish. */
  appended(kind: 'inbox' | 'topic' | 'broadcast', n: number): void;
  /** `n` doorbell messages published: inbox (one per node) or stream (one per topic or broadcast). */
  rang(kind: 'inbox' | 'stream', n: number): void;
}

/**
 * What a job has finished, saved with `job.updateProgress` after every step, so a retried or
 * stalled job resumes where it stopped instead of appending everything again.
 * - devices: `done` = how many (deduplicated) devices are appended, rung and counted. It is an
 *   offset rather than a chunk count so that a retry still resumes right if the chunk size
 *   changed in between (a rolling deploy with a new HERALD_FANOUT_CHUNK).
 * - users: `done` = how many users have all their devices appended, rung and counted.
 * - topic, broadcast: `done` = 1 once appended, rung and counted (one delivery). A `seq` saved
 *   by an earlier version (appended, not yet rung) is ignored: a job resumed from it appends the
 *   entry again under the same id, which the SDK drops as a duplicate.
 */
export interface FanoutProgress {
  done: number;
}

/** The part of a BullMQ job that `process` uses: a real `Job` fits, and so does a test stub. */
export type FanoutJobHandle = Pick<Job<FanoutJob>, 'data' | 'progress' | 'updateProgress'>;

export type FanoutResult =
  | { outcome: 'sent' }
  /** Not sent by this run: cancelled, already sent or expired, or the status is gone (''). */
  | { outcome: 'skipped'; state: string }
  | { outcome: 'expired' };

/** States a fan-out may (re)start from; 'sending' is a retry or a stalled job picked up again. */
const STARTABLE: NotificationState[] = ['queued', 'scheduled', 'sending'];

/**
 * Fan-out of one notification: users resolved to their devices, device lists cut into chunks,
 * each step delivered through the store's door (`Delivery`: append, count the step's targets in
 * the status, ring the nodes that can deliver it live).
 *
 * Retries resume from the saved progress. A step and the save of its progress are not atomic,
 * so a retry may run the step that was in flight a second time (for users: the devices of the one
 * user in flight). The delivery door makes that harmless for devices: a fan-out step appends at
 * most once per notification id and stream (lib/append.lua's mark, kept longer than the queue's
 * retry schedule), so a step run again appends no second copy and rings the nodes again. Its
 * targets are counted by each run, so a step that was delivered but whose progress was not saved
 * is counted twice in `targets` (a statistic).
 */
export class Fanout {
  constructor(private readonly deps: FanoutDeps) {}

  async process(job: FanoutJobHandle): Promise<FanoutResult> {
    const n = checkJob(job.data);
    const { status, log } = this.deps;
    const found = await status.transition(n.id, 'sending', STARTABLE);
    if (!(STARTABLE as string[]).includes(found)) {
      log.info({ id: n.id, state: found || 'missing' }, 'fan-out skipped');
      return { outcome: 'skipped', state: found };
    }
    if (n.exp <= Date.now()) {
      // Expired notifications are never delivered, not even appended. Every device it was
      // addressed to counts as expired: the audience as it is now (docs/api.md).
      const targets = await this.deps.devices.audience(n.to, this.deps.chunk);
      await status.expire(n.id, targets);
      log.info({ id: n.id, targets }, 'fan-out skipped: expired before it was sent');
      return { outcome: 'expired' };
    }

    const entry: NewEntry = { id: n.id, data: n.data, ts: n.ts, exp: n.exp };
    if (n.collapseKey !== undefined) entry.collapseKey = n.collapseKey;
    if (n.priority !== undefined) entry.priority = n.priority;
    const progress = readProgress(job.progress);
    const to = n.to;
    if ('devices' in to) await this.toDevices(job, to.devices, entry, progress, n);
    else if ('users' in to) await this.toUsers(job, to.users, entry, progress, n);
    else await this.shared(job, to, entry, progress, n);

    const before = await status.transition(n.id, 'sent', ['sending']);
    if (before !== 'sending')
      log.warn({ id: n.id, state: before || 'missing' }, 'state changed during fan-out');
    return { outcome: 'sent' };
  }

  private async toDevices(
    job: FanoutJobHandle,
    ids: readonly string[],
    entry: NewEntry,
    progress: FanoutProgress,
    n: FanoutJob,
  ): Promise<void> {
    // Set keeps first-seen order, so chunk boundaries are the same on every attempt.
    const devices = [...new Set(ids)];
    const { chunk } = this.deps;
    for (let i = progress.done; i < devices.length; i += chunk) {
      const slice = devices.slice(i, i + chunk);
      await this.inboxChunk(entry, slice, n);
      await job.updateProgress({ done: i + slice.length } satisfies FanoutProgress);
    }
  }

  /**
   * Devices of many users, streamed from Redis a batch at a time (never the whole audience in
   * memory), and packed into chunks across users: users with one or two devices each still
   * cost one pipeline per chunk, not one per user.
   */
  private async toUsers(
    job: FanoutJobHandle,
    ids: readonly string[],
    entry: NewEntry,
    progress: FanoutProgress,
    n: FanoutJob,
  ): Promise<void> {
    const users = [...new Set(ids)];
    const { chunk, devices } = this.deps;
    let pending: string[] = [];
    const flush = async (usersDone: number) => {
      if (pending.length > 0) await this.inboxChunk(entry, pending, n);
      pending = [];
      await job.updateProgress({ done: usersDone } satisfies FanoutProgress);
    };
    for (let u = progress.done; u < users.length; u++) {
      for await (const batch of devices.devicesOfUser(users[u] as string, chunk)) {
        for (const device of batch) {
          // Flush a full chunk only when the next device shows up: then every user before `u`
          // is complete once it is out (a user that ended exactly at the chunk's end counts too).
          if (pending.length >= chunk) await flush(u);
          pending.push(device);
        }
      }
    }
    await flush(users.length);
  }

  /** Topic and broadcast: one delivery (append once, ring once, count the audience). */
  private async shared(
    job: FanoutJobHandle,
    to: DeliveryTarget,
    entry: NewEntry,
    progress: FanoutProgress,
    n: FanoutJob,
  ): Promise<void> {
    if (progress.done >= 1) return;
    const d = await this.deps.delivery.deliver(to, entry, 'count');
    this.observe('topic' in to ? 'topic' : 'broadcast', d);
    await this.deps.push?.afterDelivery(n, to, d);
    await job.updateProgress({ done: 1 } satisfies FanoutProgress);
  }

  /** One chunk: appended (once per device), rung (one doorbell per node), counted, its push check scheduled. */
  private async inboxChunk(entry: NewEntry, devices: string[], n: FanoutJob): Promise<void> {
    const d = await this.deps.delivery.deliver({ devices }, entry, 'count');
    this.observe('inbox', d);
    await this.deps.push?.afterDelivery(n, { devices }, d);
  }

  private observe(kind: 'inbox' | 'topic' | 'broadcast', d: Delivered): void {
    this.deps.observer?.appended(kind, d.appended);
    this.deps.observer?.rang(kind === 'inbox' ? 'inbox' : 'stream', d.bells);
  }
}

function readProgress(p: unknown): FanoutProgress {
  if (typeof p !== 'object' || p === null) return { done: 0 };
  const { done } = p as Record<string, unknown>;
  return { done: Number.isSafeInteger(done) && (done as number) > 0 ? (done as number) : 0 };
}

/** Job data comes from the API; a malformed job is a bug there and retrying cannot fix it. */
function checkJob(d: unknown): FanoutJob {
  const j = d as Partial<FanoutJob> | null;
  const bad = (why: string): never => {
    throw new UnrecoverableError(`malformed fan-out job: ${why}`);
  };
  if (typeof j !== 'object' || j === null) return bad('not an object');
  if (typeof j.id !== 'string' || j.id === '') bad('id');
  if (typeof j.data !== 'string') bad('data must be JSON text');
  if (typeof j.ts !== 'number' || typeof j.exp !== 'number') bad('ts and exp must be numbers');
  if (j.app !== undefined && (typeof j.app !== 'string' || !APP_ID.test(j.app))) bad('app');
  if (
    j.collapseKey !== undefined &&
    (typeof j.collapseKey !== 'string' || !COLLAPSE_KEY_RE.test(j.collapseKey))
  )
    bad('collapseKey');
  if (j.priority !== undefined && j.priority !== 'high' && j.priority !== 'low') bad('priority');
  const to = j.to as Record<string, unknown> | undefined;
  if (typeof to !== 'object' || to === null) return bad('to');
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  const ok =
    ('devices' in to && strings(to.devices)) ||
    ('users' in to && strings(to.users)) ||
    ('topic' in to && typeof to.topic === 'string') ||
    to.broadcast === true;
  if (!ok) bad('to must be {devices}, {users}, {topic} or {broadcast: true}');
  return j as FanoutJob;
}
