import { randomUUID } from 'node:crypto';
import {
  type Keys,
  type OutboxEntry,
  Presence,
  type RedisClient,
  type WebhookEvent,
  WebhookOutbox,
} from '@herald/store';

/** The debouncer's consumer group on each app's outbox. */
export const PRESENCE_GROUP = 'presence';

export interface DebouncerOptions {
  redis: RedisClient;
  /** The app's keys. */
  keys: Keys;
  /** HERALD_PRESENCE_DEBOUNCE_MS: how long a disconnected device has to come back unannounced. */
  windowMs: number;
  /** This worker's consumer name in the group. */
  consumer: string;
  /** Outbox entries read per step. */
  readCount?: number;
  /** Entries another consumer held this long (it died) are taken over. */
  reclaimIdleMs?: number;
  /** Announced devices checked per step by the sweep (devices whose node died without a disconnect). */
  sweepCount?: number;
}

/** What the debouncer keeps of an announced device (the value in `keys.presenceAnnounced()`). */
interface Announced {
  user?: string;
  node?: string;
  transport?: string;
  /** When it disconnected last (ms), for the offline event's ts. */
  at?: number;
}

/**
 * Least time between two sweep slices: with 100 devices a slice (two small reads each), a
 * sweep costs Redis about 800 commands a second per app and goes over 100,000 online devices in
 * about 4 minutes.
 */
const SWEEP_EVERY_MS = 250;

/** Most due devices handled per step. */
const DUE_BATCH = 500;

/**
 * Turns an app's raw `device.connect` / `device.disconnect` (recorded by the nodes, events.ts)
 * into debounced `device.online` / `device.offline`, appended back to the outbox for the sender.
 * Its state is in Redis beside the outbox (keys.ts, `presenceAnnounced` / `presenceDue`), so a
 * restarted worker goes on where the last stopped, and it is bounded by the devices online:
 *
 * - connect: a device with an offline due (it came back within the window) stays announced, with
 *   no event; otherwise a device not yet announced is announced: `device.online`.
 * - disconnect: the device is due offline at `ts + windowMs`.
 * - due: a device with no live connection left (presence.ts; another node may hold it) is
 *   announced offline (`device.offline`, with the disconnect's ts); one still live elsewhere is
 *   looked at again when that presence would expire (the other node's own disconnect comes
 *   first, or its node died and the presence runs out).
 * - sweep: a few announced devices per step are checked for a live connection, so a device of a
 *   node that died without a disconnect is announced offline too (within the presence TTL plus
 *   a sweep cycle).
 *
 * Claims go through ZREM's answer, so two workers never both announce one offline; events of
 * one device read by two workers at once may apply out of order (one worker is exact).
 */
export class PresenceDebouncer {
  readonly outbox: WebhookOutbox;
  private readonly presence: Presence;
  private readonly announced: string;
  private readonly due: string;
  private sweepCursor = '0';
  private sweptAt = 0;
  private grouped = false;

  constructor(private readonly o: DebouncerOptions) {
    this.outbox = new WebhookOutbox(o.redis, o.keys);
    this.presence = new Presence(o.redis, o.keys, 0);
    this.announced = o.keys.presenceAnnounced();
    this.due = o.keys.presenceDue();
  }

  /**
   * One step: entries left by a dead consumer, then new ones, applied and acked; then the due
   * devices and a slice of the sweep. Returns how many outbox entries it read plus how many
   * public events it appended (0: nothing to do).
   */
  async step(now = Date.now()): Promise<number> {
    const { o } = this;
    if (!this.grouped) {
      await this.outbox.ensureGroup(PRESENCE_GROUP);
      this.grouped = true;
    }
    // Entries of other events (deliveries, acks) are read and skipped: the group keeps up with
    // a busy outbox at 200 entries (of up to 500 events) per step.
    const count = o.readCount ?? 200;
    const entries = [
      ...(await this.outbox.reclaim(PRESENCE_GROUP, o.consumer, o.reclaimIdleMs ?? 30_000, count)),
      ...(await this.outbox.read(PRESENCE_GROUP, o.consumer, count)),
    ];
    const out = await this.apply(entries);
    // At most one sweep slice per SWEEP_EVERY_MS, however fast a busy outbox makes the steps.
    if (now - this.sweptAt >= SWEEP_EVERY_MS || now < this.sweptAt) {
      this.sweptAt = now;
      await this.sweep(now);
    }
    out.push(...(await this.flushDue(now)));
    if (out.length > 0) await this.outbox.append(out);
    await this.outbox.ack(
      PRESENCE_GROUP,
      entries.map((e) => e.id),
    );
    return entries.length + out.length;
  }

  /** Applies the raw events of `entries`: each device's in order, devices side by side. */
  private async apply(entries: readonly OutboxEntry[]): Promise<WebhookEvent[]> {
    const byDevice = new Map<string, WebhookEvent[]>();
    for (const entry of entries)
      for (const e of entry.events) {
        if (e.type !== 'device.connect' && e.type !== 'device.disconnect') continue;
        const device = e.data?.device;
        if (typeof device !== 'string') continue;
        const list = byDevice.get(device);
        if (list) list.push(e);
        else byDevice.set(device, [e]);
      }
    const out: WebhookEvent[] = [];
    await Promise.all(
      [...byDevice].map(async ([device, events]) => {
        for (const e of events) {
          const ev = await this.applyOne(device, e);
          if (ev) out.push(ev);
        }
      }),
    );
    return out;
  }

  private async applyOne(device: string, e: WebhookEvent): Promise<WebhookEvent | undefined> {
    const r = this.o.redis;
    const state: Announced = pick(e.data);
    if (e.type === 'device.connect') {
      const [[, cancelled], [, added]] = (await r
        .multi()
        .zrem(this.due, device)
        .hset(this.announced, device, JSON.stringify(state))
        .exec()) as [[null, number], [null, number]];
      // Back within the window, or already announced (another connection): nothing to say.
      if (cancelled === 1 || added === 0) return undefined;
      return event('device.online', e.ts, device, state);
    }
    const at = Number.isFinite(e.ts) ? e.ts : Date.now();
    await r
      .multi()
      .hset(this.announced, device, JSON.stringify({ ...state, at }))
      .zadd(this.due, at + this.o.windowMs, device)
      .exec();
    return undefined;
  }

  /** Devices whose window is over: offline unless still connected somewhere. */
  private async flushDue(now: number): Promise<WebhookEvent[]> {
    const r = this.o.redis;
    const flat = await r.zrangebyscore(this.due, '-inf', now, 'WITHSCORES', 'LIMIT', 0, DUE_BATCH);
    const out: WebhookEvent[] = [];
    const jobs: Promise<void>[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const device = flat[i] as string;
      const score = flat[i + 1] as string;
      jobs.push(
        (async () => {
          const live = await this.presence.device(device, now);
          if (live.online) {
            // Connected elsewhere: look again when that presence would run out, unless the
            // due moved in between (a newer disconnect).
            await r.zadd(this.due, 'XX', Math.max(live.until ?? 0, now + this.o.windowMs), device);
            return;
          }
          // The claim: only the worker whose ZREM removed it (with its score unchanged) says so.
          const [[, removed], [, raw]] = (await r
            .multi()
            .zrem(this.due, device)
            .hget(this.announced, device)
            .hdel(this.announced, device)
            .exec()) as [[null, number], [null, string | null], [null, number]];
          if (removed !== 1) return;
          const state = parse(raw);
          // A device the sweep found gone (its node died) has no disconnect time: now.
          out.push(event('device.offline', state.at ?? Math.min(now, Number(score)), device, state));
        })(),
      );
    }
    await Promise.all(jobs);
    return out;
  }

  /** A slice of the announced devices: those with no live connection become due now. */
  private async sweep(now: number): Promise<void> {
    const r = this.o.redis;
    const [next, flat] = await r.hscan(this.announced, this.sweepCursor, 'COUNT', this.o.sweepCount ?? 100);
    this.sweepCursor = next;
    const devices: string[] = [];
    for (let i = 0; i < flat.length; i += 2) devices.push(flat[i] as string);
    const live = await this.presence.devices(devices, now);
    await Promise.all(live.filter((p) => !p.online).map((p) => r.zadd(this.due, 'NX', now, p.device)));
  }
}

function pick(data: Record<string, unknown> | undefined): Announced {
  const s: Announced = {};
  if (typeof data?.user === 'string') s.user = data.user;
  if (typeof data?.node === 'string') s.node = data.node;
  if (typeof data?.transport === 'string') s.transport = data.transport;
  return s;
}

function parse(raw: string | null): Announced {
  if (!raw) return {};
  try {
    const v = JSON.parse(raw) as Announced;
    return typeof v === 'object' && v !== null ? v : {};
  } catch {
    return {};
  }
}

function event(
  type: 'device.online' | 'device.offline',
  ts: number,
  device: string,
  s: Announced,
): WebhookEvent {
  const data: Record<string, unknown> = { device };
  if (s.user !== undefined) data.user = s.user;
  if (s.node !== undefined) data.node = s.node;
  if (s.transport !== undefined) data.transport = s.transport;
  return { id: randomUUID(), type, ts, data };
}
