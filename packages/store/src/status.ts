import type { NotificationState, NotificationStatus, TargetKind } from '@herald/protocol';
import { callPerKeyBatches } from './batch.js';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

export interface NewStatus {
  state: NotificationState;
  target: TargetKind;
  createdAt: number;
  exp: number;
  deliverAt?: number;
  /** Scheduled job id (for cancel). */
  jobId?: string;
  /** Targets already known at creation; the worker adds them as it goes (Delivery, record `count`). */
  targets?: number;
  /** Id of the API key that published it: webhooks send its events to that key's endpoints. */
  apiKey?: string;
}

export interface CountDelta {
  delivered: number;
  acked: number;
}

/** Per-notification status: state and counts, kept a while after the notification expires. */
export class StatusStore {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    /** How long a status outlives its notification's expiry. */
    readonly keepMs: number,
  ) {
    this.redis = withScripts(redis);
  }

  /** The same store for another app's keys (`keys.forApp(id)`). */
  withKeys(keys: Keys): StatusStore {
    return keys === this.keys ? this : new StatusStore(this.redis, keys, this.keepMs);
  }

  /** Writes a new status (lib/status.lua), kept until `keepMs` after the notification expires. */
  async create(id: string, s: NewStatus): Promise<void> {
    await this.redis.heraldStatus(
      this.keys.status(id),
      s.exp + this.keepMs,
      s.state,
      s.target,
      s.createdAt,
      s.exp,
      s.targets ?? 0,
      s.deliverAt ?? '',
      s.jobId ?? '',
      s.apiKey ?? '',
    );
  }

  async get(id: string, now = Date.now()): Promise<NotificationStatus | undefined> {
    const h = await this.redis.hgetall(this.keys.status(id));
    if (!h.state) return undefined;
    const exp = Number(h.exp);
    const targets = Number(h.targets ?? 0);
    const delivered = Number(h.delivered ?? 0);
    let state = h.state as NotificationState;
    // Once the TTL is over, whoever has not received it never will.
    const over = now >= exp;
    if (over && (state === 'sent' || state === 'queued' || state === 'scheduled')) state = 'expired';
    const out: NotificationStatus = {
      id,
      state,
      target: h.target as TargetKind,
      createdAt: new Date(Number(h.createdAt)).toISOString(),
      expiresAt: new Date(exp).toISOString(),
      counts: {
        targets,
        delivered,
        acked: Number(h.acked ?? 0),
        expired: over ? Math.max(0, targets - delivered) : 0,
        pushed: Number(h.pushed ?? 0),
        pushFailed: Number(h.pushFailed ?? 0),
      },
    };
    if (h.deliverAt) out.deliverAt = new Date(Number(h.deliverAt)).toISOString();
    return out;
  }

  /** Moves state to `to` when it is one of `from`; returns the state found ('' if none). */
  async transition(id: string, to: NotificationState, from: NotificationState[]): Promise<string> {
    return this.redis.heraldTransition(this.keys.status(id), to, '', ...from);
  }

  /**
   * Moves a notification that expired before it was sent from `sending` to `expired`, with
   * `targets` set to the devices it was addressed to (none got it: they all count as expired).
   * Returns the state found.
   */
  async expire(id: string, targets: number): Promise<string> {
    return this.redis.heraldTransition(this.keys.status(id), 'expired', targets, 'sending');
  }

  /** The id of the API key that published a notification (recorded for webhooks), if any. */
  async apiKey(id: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.status(id), 'key')) ?? undefined;
  }

  /** Records the publishing key of a notification whose status a direct publish wrote (status-key.lua). */
  async setApiKey(id: string, apiKey: string): Promise<void> {
    await this.redis.heraldStatusKey(this.keys.status(id), apiKey);
  }

  /** targets, delivered (for a `notification.expired` webhook event); undefined once gone. */
  async counts(id: string): Promise<{ targets: number; delivered: number; key?: string } | undefined> {
    const [targets, delivered, key] = await this.redis.hmget(
      this.keys.status(id),
      'targets',
      'delivered',
      'key',
    );
    if (targets === null || targets === undefined) return undefined;
    const out: { targets: number; delivered: number; key?: string } = {
      targets: Number(targets),
      delivered: Number(delivered ?? 0),
    };
    if (key) out.key = key;
    return out;
  }

  async addTargets(id: string, n: number): Promise<void> {
    await this.redis.heraldCounts(1, this.keys.status(id), 1, 'targets', n);
  }

  /** Counts Web Push outcomes of one notification (lib/status.lua; a status that is gone is left alone). */
  async addPushes(id: string, pushed: number, failed: number): Promise<void> {
    const args: (string | number)[] = [];
    if (pushed) args.push('pushed', pushed);
    if (failed) args.push('pushFailed', failed);
    if (args.length === 0) return;
    await this.redis.heraldCounts(1, this.keys.status(id), args.length / 2, ...args);
  }

  /** Flushes aggregated delivered/acked counts of many notifications: a few script calls, one round trip. */
  async addCounts(deltas: ReadonlyMap<string, CountDelta>): Promise<void> {
    const items: [string, (string | number)[]][] = [];
    for (const [id, d] of deltas) {
      const args: (string | number)[] = [0];
      if (d.delivered) args.push('delivered', d.delivered);
      if (d.acked) args.push('acked', d.acked);
      args[0] = (args.length - 1) / 2;
      if (args[0] > 0) items.push([this.keys.status(id), args]);
    }
    await callPerKeyBatches(this.redis, items, [], (n, ...a) => this.redis.heraldCounts(n, ...a));
  }
}
