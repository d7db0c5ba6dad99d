import { startRedis } from '@herald/stack';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedis,
  Devices,
  decodeDoorbell,
  encodeDoorbell,
  Idempotency,
  Keys,
  type NewEntry,
  Presence,
  type RedisClient,
  StatusStore,
  Streams,
} from '../src/index.js';

const keys = new Keys('t');
let server: Awaited<ReturnType<typeof startRedis>>;
let redis: RedisClient;
let streams: Streams;

const entry = (id: string, ttlMs = 60_000, data = '{"a":1}'): NewEntry => ({
  id,
  data,
  ts: Date.now(),
  exp: Date.now() + ttlMs,
});

beforeAll(async () => {
  server = await startRedis();
  redis = createRedis(server.url, 'background');
  streams = new Streams(redis, keys, { inboxMaxLen: 1000, topicMaxLen: 1000, keepMs: 1000 });
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe('Streams', () => {
  it('gives contiguous seqs per stream and reads after a cursor with the head', async () => {
    const a = await streams.appendInboxes(['d1', 'd2'], entry('n1'));
    const b = await streams.appendInboxes(['d1'], entry('n2'));
    expect(a.map((r) => r.seq)).toEqual([1, 1]);
    expect(b[0]!.seq).toBe(2);
    const r = await streams.read(keys.inbox('d1'), 0, 10);
    expect(r.head).toBe(2);
    expect(r.entries.map((e) => [e.seq, e.id, e.data])).toEqual([
      [1, 'n1', '{"a":1}'],
      [2, 'n2', '{"a":1}'],
    ]);
    expect((await streams.read(keys.inbox('d1'), 1, 10)).entries.map((e) => e.seq)).toEqual([2]);
    expect(await streams.appendTopic('news', entry('n3'))).toBe(1);
    expect(await streams.appendTopic('news', entry('n4'))).toBe(2);
    expect(await streams.appendBroadcast(entry('n5'))).toBe(1);
  });

  it('returns the live nodes of a device and prunes dead ones', async () => {
    await new Devices(redis, keys, 60_000).connect([{ device: 'd3', user: 'u3' }], 'node-a', 60_000);
    await redis.hset(keys.presence('d3'), 'node-dead', Date.now() - 1);
    const [r] = await streams.appendInboxes(['d3'], entry('n6'));
    expect(r!.nodes).toEqual(['node-a']);
    expect(await redis.hkeys(keys.presence('d3'))).toEqual(['node-a']);
  });

  it('trims expired entries at the head and sets a TTL that outlives the longest entry', async () => {
    await streams.appendInboxes(['d4'], entry('short', 50));
    const until = Date.now() + 60;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await streams.appendInboxes(['d4'], entry('long', 60_000));
    const r = await streams.read(keys.inbox('d4'), 0, 10);
    expect(r.entries.map((e) => e.id)).toEqual(['long']);
    expect(r.head).toBe(2);
    const ttl = await redis.pttl(keys.inbox('d4').stream);
    expect(ttl).toBeGreaterThan(59_000);
  });

  it('trims up to 8 expired entries per append when several expired at the head', async () => {
    // Ten entries that expired a second ago, as appends would have left them.
    const { stream, seq } = keys.inbox('d4b');
    const past = Date.now() - 1000;
    for (let i = 1; i <= 10; i++)
      await redis.xadd(stream, `${i}-0`, 'i', `old${i}`, 'd', '{}', 't', past - 60_000, 'e', past);
    await redis.set(seq, 10);
    await streams.appendInboxes(['d4b'], entry('new1', 60_000));
    // 8 of the 10 expired entries go with this append, the other 2 with the next.
    expect(await redis.xlen(stream)).toBe(3);
    await streams.appendInboxes(['d4b'], entry('new2', 60_000));
    expect(await redis.xlen(stream)).toBe(2);
    expect((await streams.read(keys.inbox('d4b'), 0, 20)).entries.map((e) => e.id)).toEqual(['new1', 'new2']);
  });

  it('reads after cursors too large for Lua to print as integers', async () => {
    await streams.appendInboxes(['d-big'], entry('b1'));
    const r = await streams.read(keys.inbox('d-big'), 99_999_999_999_999, 10);
    expect(r).toEqual({ head: 1, entries: [] });
    expect((await streams.read(keys.inbox('d-big'), Number.MAX_SAFE_INTEGER - 1, 10)).entries).toEqual([]);
  });

  it('continues after the stream when its counter was lost', async () => {
    await streams.appendInboxes(['d5'], entry('x1'));
    await streams.appendInboxes(['d5'], entry('x2'));
    await redis.del(keys.inbox('d5').seq);
    const [r] = await streams.appendInboxes(['d5'], entry('x3'));
    expect(r!.seq).toBe(3);
  });
});

describe('Devices', () => {
  it('keeps durable subscriptions and only moves cursors forward', async () => {
    const devices = new Devices(redis, keys, 60_000);
    await devices.subscribe('d6', 'news');
    await devices.advanceCursors(new Map([['d6', new Map([['inbox', 5]])]]));
    await devices.advanceCursors(
      new Map([
        [
          'd6',
          new Map([
            ['inbox', 3],
            ['topic:news', 2],
          ]),
        ],
      ]),
    );
    await streams.appendInboxes(['d6'], entry('d6-1'));
    const [s] = await devices.connect(
      [{ device: 'd6', user: 'u6', address: '203.0.113.9' }],
      'node-6',
      60_000,
    );
    expect(s).toEqual({ topics: ['news'], cursors: { inbox: 5, 'topic:news': 2 }, inboxHead: 1 });
    const presence = new Presence(redis, keys, 60_000);
    expect(await presence.nodesOf('d6')).toEqual(['node-6']);
    expect(await presence.addresses('d6')).toEqual({ 'node-6': '203.0.113.9' });
    expect(await devices.topicMemberCount('news')).toBe(1);
    const batches: string[][] = [];
    for await (const b of devices.devicesOfUser('u6')) batches.push(b);
    expect(batches.flat()).toEqual(['d6']);
    await devices.unsubscribe('d6', 'news');
    expect(await devices.topicsOf('d6')).toEqual([]);
    expect(await devices.cursor('d6', 'topic:news')).toBeUndefined();
  });

  it('counts the audience of each kind of target without delivering', async () => {
    const k = new Keys('aud');
    const devices = new Devices(redis, k, 60_000);
    await devices.connect(
      [
        { device: 'a1', user: 'ua' },
        { device: 'a2', user: 'ua' },
      ],
      'node-1',
      60_000,
    );
    await devices.connect([{ device: 'b1', user: 'ub' }], 'node-2', 60_000);
    await devices.subscribe('a1', 'news');
    expect(await devices.audience({ devices: ['x', 'y', 'x'] })).toBe(2);
    expect(await devices.audience({ users: ['ua', 'ub', 'ua', 'nobody'] }, 2)).toBe(3);
    expect(await devices.audience({ topic: 'news' })).toBe(1);
    expect(await devices.audience({ broadcast: true })).toBe(3);
  });
});

describe('batched flushes (many keys per script call)', () => {
  it("moves 450 devices' cursors and 450 statuses' counts over several calls, each key on its own", async () => {
    const devices = new Devices(redis, keys, 60_000);
    const status = new StatusStore(redis, keys, 60_000);
    const ids = Array.from({ length: 450 }, (_, i) => `bf${i}`);
    const now = Date.now();
    for (const id of ids.filter((_, i) => i % 3 !== 0))
      await status.create(id, { state: 'sent', target: 'devices', createdAt: now, exp: now + 60_000 });
    await devices.advanceCursors(new Map(ids.map((d, i) => [d, new Map([['inbox', i + 1]])])));
    // Second round: inbox only forward for odd ones, a topic for every one.
    await devices.advanceCursors(
      new Map(
        ids.map((d, i) => [
          d,
          new Map([
            ['inbox', i % 2 ? i + 5 : 0],
            ['topic:x', 7],
          ]),
        ]),
      ),
    );
    await status.addCounts(new Map(ids.map((id, i) => [id, { delivered: i + 1, acked: i % 2 }])));
    for (const i of [0, 1, 199, 200, 201, 449]) {
      const id = ids[i] as string;
      expect(await redis.hgetall(keys.cursors(id))).toEqual({
        inbox: String(i % 2 ? i + 5 : i + 1),
        'topic:x': '7',
      });
      expect(await redis.pttl(keys.cursors(id))).toBeGreaterThan(50_000);
      if (i % 3 === 0) expect(await redis.exists(keys.status(id))).toBe(0);
      else expect((await status.get(id))!.counts).toMatchObject({ delivered: i + 1, acked: i % 2 });
    }
  });
});

describe('StatusStore', () => {
  it('allows a state change only from the given states', async () => {
    const status = new StatusStore(redis, keys, 60_000);
    await status.create('s1', {
      state: 'scheduled',
      target: 'devices',
      createdAt: Date.now(),
      exp: Date.now() + 60_000,
    });
    expect(await status.transition('s1', 'cancelled', ['scheduled'])).toBe('scheduled');
    expect(await status.transition('s1', 'sending', ['queued', 'scheduled'])).toBe('cancelled');
    expect((await status.get('s1'))!.state).toBe('cancelled');
    expect(await status.transition('missing', 'sending', ['queued'])).toBe('');
  });

  it('adds counts only while the status exists and reports expired ones after the TTL', async () => {
    const status = new StatusStore(redis, keys, 60_000);
    const now = Date.now();
    await status.create('s2', { state: 'sent', target: 'devices', createdAt: now, exp: now + 1000 });
    await status.addTargets('s2', 3);
    await status.addCounts(
      new Map([
        ['s2', { delivered: 2, acked: 1 }],
        ['gone', { delivered: 1, acked: 0 }],
      ]),
    );
    expect(await redis.exists(keys.status('gone'))).toBe(0);
    expect((await status.get('s2', now))!.counts).toEqual({
      targets: 3,
      delivered: 2,
      acked: 1,
      expired: 0,
      pushed: 0,
      pushFailed: 0,
    });
    const later = await status.get('s2', now + 2000);
    expect(later!.state).toBe('expired');
    expect(later!.counts.expired).toBe(1);
  });

  it('expires a notification that is being sent with its target count: all of them expired', async () => {
    const status = new StatusStore(redis, keys, 60_000);
    const now = Date.now();
    await status.create('s3', { state: 'scheduled', target: 'topic', createdAt: now, exp: now - 1 });
    expect(await status.expire('s3', 4)).toBe('scheduled');
    expect(await redis.hget(keys.status('s3'), 'state')).toBe('scheduled');
    await status.transition('s3', 'sending', ['scheduled']);
    expect(await status.expire('s3', 4)).toBe('sending');
    expect(await status.get('s3')).toMatchObject({
      state: 'expired',
      counts: { targets: 4, delivered: 0, acked: 0, expired: 4, pushed: 0, pushFailed: 0 },
    });
  });
});

describe('Idempotency', () => {
  it('claims once; a second claim sees the holder and whether the body matches', async () => {
    const idem = new Idempotency(redis, keys, 60_000);
    expect(await idem.claim('k', 'key-1', 'id-1', 'h1')).toEqual({ fresh: true });
    expect(await idem.claim('k', 'key-1', 'id-2', 'h1')).toEqual({
      fresh: false,
      id: 'id-1',
      sameBody: true,
    });
    expect(await idem.claim('k', 'key-1', 'id-3', 'h2')).toEqual({
      fresh: false,
      id: 'id-1',
      sameBody: false,
    });
    // Only the claimer frees it.
    expect(await idem.release('k', 'key-1', 'id-2')).toBe(false);
    expect(await idem.release('k', 'key-1', 'id-1')).toBe(true);
    expect(await idem.claim('k', 'key-1', 'id-4', 'h1')).toEqual({ fresh: true });
  });
});

describe('doorbells', () => {
  it('round-trip every kind', () => {
    const e = entry('n', 1000, '{"x":"a\\nb"}');
    for (const b of [
      { k: 'inbox' as const, entry: e, to: [['d', 1]] as [string, number][] },
      { k: 'stream' as const, stream: 'topic:x', seq: 4, entry: e },
      { k: 'sub' as const, device: 'd', topic: 't' },
    ]) {
      expect(decodeDoorbell(encodeDoorbell(b))).toEqual(b);
    }
    expect(decodeDoorbell('garbage')).toBeUndefined();
  });
});
