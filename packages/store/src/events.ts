import type { WebhookEventType } from '@herald/protocol';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

export { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '@herald/protocol';

/** Raw presence facts from nodes, turned into `device.online` / `device.offline` by the worker. */
export type RawEventType = 'device.connect' | 'device.disconnect';

/**
 * One event in the outbox. `id` is unique per event (the Standard Webhooks `webhook-id` of the
 * event once sent; receivers dedupe on it), `ts` is when it happened (ms), `data` its payload:
 * - notification.delivered / notification.acked: { notification, device, stream, seq }
 * - notification.expired: { notification, missed } (devices that never got it)
 * - notification.pushed / push.failed: { notification, device, status?, reason? }
 * - device.online / device.offline: { device, user?, node?, transport? }
 * - device.connect / device.disconnect (raw): { device, user?, node, transport }
 */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType | RawEventType;
  ts: number;
  data: Record<string, unknown>;
}

/** Most entries kept in an app's outbox (approximate trim): the bound if the worker is away. */
export const OUTBOX_MAX_ENTRIES = 100_000;
/** Most events in one outbox entry; `append` splits larger batches. */
export const OUTBOX_BATCH = 500;

/** An outbox entry as read by a consumer group: its stream id and its events. */
export interface OutboxEntry {
  id: string;
  events: WebhookEvent[];
}

type XReadGroupReply = [string, [string, string[]][]][] | null;

/**
 * An app's webhook outbox (`keys.webhookEvents()`): a Redis stream, each entry one batch of
 * events as JSON in field `b`. Producers append (one XADD per batch, auto-pipelined with whatever
 * else they write), the worker reads with consumer groups, so each group sees every event and an
 * entry read but not acked is read again after a crash (XAUTOCLAIM).
 */
export class WebhookOutbox {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly maxEntries = OUTBOX_MAX_ENTRIES,
  ) {}

  /** The same outbox for another app's keys. */
  withKeys(keys: Keys): WebhookOutbox {
    return keys === this.keys ? this : new WebhookOutbox(this.redis, keys, this.maxEntries);
  }

  get key(): string {
    return this.keys.webhookEvents();
  }

  /** Appends events, in entries of at most OUTBOX_BATCH. */
  async append(events: readonly WebhookEvent[]): Promise<void> {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < events.length; i += OUTBOX_BATCH)
      calls.push(
        this.redis.xadd(
          this.key,
          'MAXLEN',
          '~',
          this.maxEntries,
          '*',
          'b',
          JSON.stringify(events.slice(i, i + OUTBOX_BATCH)),
        ),
      );
    await Promise.all(calls);
  }

  /** Creates the consumer group (from the start of the stream) if it is not there yet. */
  async ensureGroup(group: string): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.key, group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
  }

  /** New entries for `consumer` of `group`, up to `count`, waiting up to `blockMs` (0: no wait). */
  async read(group: string, consumer: string, count: number, blockMs = 0): Promise<OutboxEntry[]> {
    const args: (string | number)[] = ['GROUP', group, consumer, 'COUNT', count];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', this.key, '>');
    const reply = (await (
      this.redis as unknown as { xreadgroup(...a: (string | number)[]): Promise<unknown> }
    ).xreadgroup(...args)) as XReadGroupReply;
    return decode(reply?.[0]?.[1] ?? []);
  }

  /** Entries pending longer than `idleMs` (a consumer died with them), taken over by `consumer`. */
  async reclaim(group: string, consumer: string, idleMs: number, count: number): Promise<OutboxEntry[]> {
    const reply = (await this.redis.xautoclaim(this.key, group, consumer, idleMs, '0', 'COUNT', count)) as [
      string,
      [string, string[]][],
      ...unknown[],
    ];
    return decode((reply?.[1] ?? []).filter((e) => e && Array.isArray(e[1])));
  }

  /** Marks entries done for `group`. */
  async ack(group: string, ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.redis.xack(this.key, group, ...ids);
  }
}

function decode(entries: [string, string[]][]): OutboxEntry[] {
  const out: OutboxEntry[] = [];
  for (const [id, fields] of entries) {
    let events: WebhookEvent[] = [];
    for (let i = 0; i + 1 < fields.length; i += 2)
      if (fields[i] === 'b') {
        try {
          const v = JSON.parse(fields[i + 1]!) as unknown;
          if (Array.isArray(v)) events = v as WebhookEvent[];
        } catch {
          // A malformed entry (not written by Herald) carries nothing; it is acked and skipped.
        }
      }
    out.push({ id, events });
  }
  return out;
}
