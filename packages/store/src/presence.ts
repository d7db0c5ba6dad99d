import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/** What carries a device's connection, as the presence API names it. */
export type PresenceTransport = 'websocket' | 'sse' | 'poll';

/** A device with the topics it reads on a node: what the heartbeat refreshes. */
export interface PresentDevice {
  device: string;
  /** Topics the device's connection on this node has joined (their online sets are refreshed). */
  topics?: readonly string[];
}

/** A device's presence as the API shows it (docs/api.md, "Presence"). */
export interface DevicePresence {
  device: string;
  online: boolean;
  /** Its live connections, one per node, earliest first. */
  nodes: { id: string; since: number; transport: PresenceTransport }[];
  /** When its oldest live connection was made (ms), or undefined when offline. */
  since: number | undefined;
  /** Its last hello or disconnect (ms), if known within the device retention. */
  seen: number | undefined;
  /** When its presence runs out unless refreshed (ms, the latest of its nodes'), when online. */
  until: number | undefined;
}

/** A page of a scan: items and the cursor of the next page (undefined at the end). */
export interface ScanPage<T> {
  items: T[];
  cursor: string | undefined;
}

/** Most SCAN calls one page makes (a page of expired entries must not loop long). */
const SCAN_CALLS = 8;

/**
 * Which nodes hold a device's connections: a hash nodeId -> expiry ms per device. Fields are
 * written by a node's hello (`Devices.connect`, hello.lua) and refreshed by the node's heartbeat;
 * a dead node's fields expire by value (readers ignore and prune them) and the key itself expires
 * when nothing refreshes it. Beside it, the info hash (`keys.presenceInfo`: since, transport,
 * last seen) for the presence API, and per topic a sorted set of its online members
 * (`keys.topicOnline`: device -> expiry) so that counting a topic's online members is one ZCOUNT
 * (O(log n)) rather than a walk of its members.
 *
 * The topic sets are written per topic, not per device: a batch of hellos or of heartbeat
 * refreshes gives one ZADD (with all the batch's members of the topic) and one PEXPIRE per
 * topic, auto-pipelined with the rest (no round trip of their own). Measured with INFO
 * commandstats (redis 7.0, 2,000 devices each on 3 topics, hellos in batches of 200, refresh in
 * batches of 1,000; the shared box at load 25, so wall times are noise): a hello is 10.0 Redis
 * commands and 24-34 us of Redis time per device before, 14.8 commands (4 more inside hello.lua:
 * since/transport/seen) and 28-30 us after; a heartbeat refresh 3.00 commands and 1.4-2.0 us per
 * device before, 3.01 commands and 4.6-7.6 us after (the ZADDs: about 1-2 us per device and
 * topic, so 50,000 devices on 3 topics cost Redis about 0.3 s per HERALD_HEARTBEAT_MS).
 */
export class Presence {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly ttlMs: number,
    /** How long the info hash (last seen) lives: the device retention. */
    private readonly infoTtlMs = 30 * 86_400_000,
  ) {}

  /**
   * Removes `nodeId` from the presence of many devices (and them from the online sets of the
   * topics given), auto-pipelined (one write per tick). A device also connected on another node
   * leaves a topic's online set until that node's next heartbeat puts it back.
   */
  async removeMany(
    devices: readonly (string | PresentDevice)[],
    nodeId: string,
    now = Date.now(),
  ): Promise<void> {
    const r = this.redis;
    const calls: Promise<unknown>[] = [];
    const byTopic = new Map<string, string[]>();
    for (const entry of devices) {
      const d = typeof entry === 'string' ? entry : entry.device;
      const info = this.keys.presenceInfo(d);
      calls.push(
        r.hdel(this.keys.presence(d), nodeId),
        r.hdel(this.keys.presenceAddr(d), nodeId),
        r.hdel(info, nodeId),
        r.hset(info, 'seen', now),
        r.pexpire(info, this.infoTtlMs),
      );
      if (typeof entry !== 'string') group(byTopic, entry.device, entry.topics);
    }
    for (const [topic, members] of byTopic) calls.push(r.zrem(this.keys.topicOnline(topic), ...members));
    await Promise.all(calls);
  }

  /** Adds devices to the online sets of their topics (after their hellos): one ZADD per topic. */
  async joinTopics(devices: readonly PresentDevice[], now = Date.now()): Promise<void> {
    const byTopic = new Map<string, string[]>();
    for (const d of devices) group(byTopic, d.device, d.topics);
    await Promise.all(this.topicWrites(byTopic, now + this.ttlMs, now, false));
  }

  /** Client address per node of the device's live connections. */
  async addresses(device: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.presenceAddr(device));
  }

  /**
   * Refreshes many devices in batches of `batch` (each one auto-pipelined round trip), so a node
   * with 50k sockets never holds Redis or its own memory for long. Devices given with their
   * topics are refreshed in the topics' online sets too (one ZADD per topic per batch), whose
   * expired members are dropped at the same time (one ZREMRANGEBYSCORE per topic per batch).
   */
  async refresh(
    devices: Iterable<string | PresentDevice>,
    nodeId: string,
    now = Date.now(),
    batch = 1000,
  ): Promise<void> {
    const r = this.redis;
    const exp = now + this.ttlMs;
    let calls: Promise<unknown>[] = [];
    let byTopic = new Map<string, string[]>();
    let n = 0;
    for (const entry of devices) {
      const device = typeof entry === 'string' ? entry : entry.device;
      const k = this.keys.presence(device);
      calls.push(
        r.hset(k, nodeId, exp),
        r.pexpire(k, this.ttlMs),
        r.pexpire(this.keys.presenceAddr(device), this.ttlMs),
      );
      if (typeof entry !== 'string') group(byTopic, device, entry.topics);
      if (++n >= batch) {
        calls.push(...this.topicWrites(byTopic, exp, now, true));
        await Promise.all(calls);
        calls = [];
        byTopic = new Map();
        n = 0;
      }
    }
    calls.push(...this.topicWrites(byTopic, exp, now, true));
    await Promise.all(calls);
  }

  private topicWrites(byTopic: Map<string, string[]>, exp: number, now: number, prune: boolean) {
    const r = this.redis;
    const calls: Promise<unknown>[] = [];
    for (const [topic, members] of byTopic) {
      const k = this.keys.topicOnline(topic);
      const args: (string | number)[] = [];
      for (const m of members) args.push(exp, m);
      calls.push(r.zadd(k, ...args), r.pexpire(k, this.ttlMs));
      if (prune) calls.push(r.zremrangebyscore(k, '-inf', now));
    }
    return calls;
  }

  /** Nodes where the device is live now. */
  async nodesOf(device: string, now = Date.now()): Promise<string[]> {
    const h = await this.redis.hgetall(this.keys.presence(device));
    return Object.entries(h)
      .filter(([, exp]) => Number(exp) > now)
      .map(([node]) => node);
  }

  /** The presence of one device: live nodes with since and transport, and when it was last seen. */
  async device(device: string, now = Date.now()): Promise<DevicePresence> {
    const [live, info] = await Promise.all([
      this.redis.hgetall(this.keys.presence(device)),
      this.redis.hgetall(this.keys.presenceInfo(device)),
    ]);
    const nodes: DevicePresence['nodes'] = [];
    let until: number | undefined;
    for (const [id, exp] of Object.entries(live)) {
      if (Number(exp) <= now) continue;
      until = Math.max(until ?? 0, Number(exp));
      const [since, transport] = (info[id] ?? '').split('|');
      nodes.push({
        id,
        since: Number(since) || now,
        transport: isTransport(transport) ? transport : 'websocket',
      });
    }
    nodes.sort((a, b) => a.since - b.since || (a.id < b.id ? -1 : 1));
    const seen = info.seen === undefined ? undefined : Number(info.seen);
    return { device, online: nodes.length > 0, nodes, since: nodes[0]?.since, seen, until };
  }

  /** The presence of many devices (auto-pipelined: one round trip). */
  async devices(list: readonly string[], now = Date.now()): Promise<DevicePresence[]> {
    return Promise.all(list.map((d) => this.device(d, now)));
  }

  /** A page of at most `limit` of the user's devices (SSCAN of the user's device set; see `scanPage`). */
  async userDevicesPage(user: string, cursor: string, limit: number): Promise<ScanPage<string>> {
    const key = this.keys.userDevices(user);
    return scanPage((c) => this.redis.sscan(key, c, 'COUNT', limit), cursor, limit);
  }

  /** How many of the topic's members are connected now: one ZCOUNT. */
  async topicCount(topic: string, now = Date.now()): Promise<number> {
    return this.redis.zcount(this.keys.topicOnline(topic), `(${now}`, '+inf');
  }

  /**
   * A page of at most `limit` of the topic's online members (ZSCAN; see `scanPage` for the
   * cursor). A member online the whole time is listed at least once, as with any SCAN.
   */
  async topicPage(topic: string, cursor: string, limit: number, now = Date.now()): Promise<ScanPage<string>> {
    const key = this.keys.topicOnline(topic);
    return scanPage(
      async (c) => {
        const [next, flat] = await this.redis.zscan(key, c, 'COUNT', limit);
        const items: (string | undefined)[] = [];
        for (let i = 0; i + 1 < flat.length; i += 2)
          items.push(Number(flat[i + 1]) > now ? flat[i] : undefined);
        return [next, items];
      },
      cursor,
      limit,
    );
  }
}

/** Whether a page cursor is well formed: `<redis scan cursor>` or `<redis scan cursor>.<skip>`. */
export const PAGE_CURSOR = /^(0|[1-9][0-9]{0,19})(\.[1-9][0-9]{0,5})?$/;

/**
 * One page of at most `limit` items of a Redis SCAN family command. Redis may answer one SCAN
 * call with more than COUNT items (a small set is answered whole), so the page cursor is the
 * Redis cursor plus how many of that call's items were already given (`<cursor>.<skip>`): the
 * next page scans the same cursor again and skips them. `scan` returns undefined for an item
 * that is filtered out (it still counts in the skip, so a filter that changes in between
 * shifts nothing). Bounded: at most SCAN_CALLS calls per page (the page may come back short,
 * with a cursor, when many entries were filtered out).
 */
export async function scanPage<T>(
  scan: (cursor: string) => Promise<[string, (T | undefined)[]]>,
  cursor: string,
  limit: number,
): Promise<ScanPage<T>> {
  const dot = cursor.indexOf('.');
  let at = dot < 0 ? cursor : cursor.slice(0, dot);
  let skip = dot < 0 ? 0 : Number(cursor.slice(dot + 1));
  const items: T[] = [];
  for (let calls = 0; calls < SCAN_CALLS; calls++) {
    const [next, got] = await scan(at);
    let i = skip;
    for (; i < got.length && items.length < limit; i++) {
      const v = got[i];
      if (v !== undefined) items.push(v);
    }
    if (i < got.length) return { items, cursor: `${at}.${i}` };
    if (next === '0') return { items, cursor: undefined };
    at = next;
    skip = 0;
    if (items.length >= limit) break;
  }
  return { items, cursor: at };
}

function group(byTopic: Map<string, string[]>, device: string, topics: readonly string[] | undefined): void {
  if (!topics) return;
  for (const t of topics) {
    const list = byTopic.get(t);
    if (list) list.push(device);
    else byTopic.set(t, [device]);
  }
}

function isTransport(t: string | undefined): t is PresenceTransport {
  return t === 'websocket' || t === 'sse' || t === 'poll';
}
