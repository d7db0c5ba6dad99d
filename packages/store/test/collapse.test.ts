import { REDIS_MODES, type TestRedis } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDelivery,
  createRedis,
  Devices,
  decodeDoorbell,
  Keys,
  type NewEntry,
  type RedisClient,
  StatusStore,
  Streams,
  Subscriber,
} from '../src/index.js';

/**
 * collapseKey and priority on entries (issue #17), through the Delivery door on one Redis
 * (deliver.lua for one device, a topic; append.lua for device lists) and on a Redis Cluster (the
 * steps): a newer entry with the same key on the same stream marks the older ones collapsed when
 * read; keys do not interfere across keys or streams; entries without them store nothing extra.
 */

const entry = (id: string, o: Partial<NewEntry> = {}): NewEntry => ({
  id,
  data: '{"a":1}',
  ts: Date.now(),
  exp: Date.now() + 60_000,
  ...o,
});

describe.each(REDIS_MODES)('collapse keys and priority on $name', (mode) => {
  let server: TestRedis;
  let redis: RedisClient;
  let n = 0;

  function world(maxLen = 1000) {
    const keys = new Keys(`ck${++n}`);
    const streams = new Streams(redis, keys, { inboxMaxLen: maxLen, topicMaxLen: maxLen, keepMs: 1000 });
    const status = new StatusStore(redis, keys, 60_000);
    const devices = new Devices(redis, keys, 60_000);
    return { keys, streams, delivery: createDelivery({ redis, keys, streams, status, devices }) };
  }

  beforeAll(async () => {
    server = await mode.start();
    redis = createRedis(server.url, 'background');
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('5 appends with one key to a device: the read returns all 5, the first 4 collapsed', async () => {
    const w = world();
    for (let i = 1; i <= 5; i++)
      await w.delivery.deliver({ devices: ['d1'] }, entry(`n${i}`, { collapseKey: 'score' }), 'sent');
    const r = await w.streams.read(w.keys.inbox('d1'), 0, 10);
    expect(r.head).toBe(5);
    expect(r.entries.map((e) => [e.seq, e.id, e.collapseKey, e.collapsed === true])).toEqual([
      [1, 'n1', 'score', true],
      [2, 'n2', 'score', true],
      [3, 'n3', 'score', true],
      [4, 'n4', 'score', true],
      [5, 'n5', 'score', false],
    ]);
    // Read from a cursor past the first ones: still collapsed (the hash holds the latest seq).
    const later = await w.streams.read(w.keys.inbox('d1'), 3, 10);
    expect(later.entries.map((e) => [e.seq, e.collapsed === true])).toEqual([
      [4, true],
      [5, false],
    ]);
    // The collapse hash lives in the stream's slot and expires with it.
    expect(await redis.hgetall(w.keys.collapse(w.keys.inbox('d1')))).toEqual({ score: '5' });
    expect(await redis.pttl(w.keys.collapse(w.keys.inbox('d1')))).toBeGreaterThan(59_000);
  });

  it('different keys, streams and keyless entries do not interfere', async () => {
    const w = world();
    const seq = ['a', 'b', undefined, 'a', 'b', undefined];
    for (const [i, k] of seq.entries())
      await w.delivery.deliver(
        { devices: ['d1', 'd2'] },
        entry(`m${i}`, k ? { collapseKey: k } : {}),
        'count',
      );
    await w.delivery.deliver({ devices: ['d2'] }, entry('late', { collapseKey: 'b' }), 'sent');
    const one = await w.streams.read(w.keys.inbox('d1'), 0, 10);
    expect(one.entries.map((e) => e.collapsed === true)).toEqual([true, true, false, false, false, false]);
    const two = await w.streams.read(w.keys.inbox('d2'), 0, 10);
    expect(two.entries.map((e) => e.collapsed === true)).toEqual([
      true,
      true,
      false,
      false,
      true,
      false,
      false,
    ]);
    // A keyless entry stores only the usual fields.
    const raw = await redis.xrange(w.keys.inbox('d1').stream, '3-0', '3-0');
    const fields: string[] = raw[0]?.[1] ?? [];
    expect(fields.filter((_, i) => i % 2 === 0)).toEqual(['i', 'd', 't', 'e']);
  });

  it('collapses on topic streams too, and a key of another topic does not count', async () => {
    const w = world();
    for (let i = 1; i <= 3; i++)
      await w.delivery.deliver({ topic: 'news' }, entry(`t${i}`, { collapseKey: 'k' }), 'sent');
    await w.delivery.deliver({ topic: 'sport' }, entry('s1', { collapseKey: 'k' }), 'sent');
    const news = await w.streams.read(w.keys.topic('news'), 0, 10);
    expect(news.entries.map((e) => e.collapsed === true)).toEqual([true, true, false]);
    const sport = await w.streams.read(w.keys.topic('sport'), 0, 10);
    expect(sport.entries.map((e) => e.collapsed === true)).toEqual([false]);
  });

  it('stores priority only when not normal, and the doorbell carries it', async () => {
    const w = world();
    const sub = new Subscriber(createRedis(server.url, 'subscriber'));
    const got: string[] = [];
    sub.onMessage((_c, m) => got.push(m));
    await sub.subscribe(w.keys.topicChannel('p'));
    try {
      await w.delivery.deliver({ topic: 'p' }, entry('h', { priority: 'high' }), 'sent');
      await w.delivery.deliver({ topic: 'p' }, entry('n'), 'sent');
      await w.delivery.deliver({ topic: 'p' }, entry('l', { priority: 'low' }), 'sent');
      const r = await w.streams.read(w.keys.topic('p'), 0, 10);
      expect(r.entries.map((e) => e.priority)).toEqual(['high', undefined, 'low']);
      const deadline = Date.now() + 5000;
      while (got.length < 3 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      const bells = got.map((m) => decodeDoorbell(m));
      expect(bells.map((b) => (b?.k === 'stream' ? b.entry.priority : 'none'))).toEqual([
        'high',
        undefined,
        'low',
      ]);
    } finally {
      sub.redis.disconnect();
    }
  });

  it('keeps the collapse hash bounded by the stream length as keys are trimmed', async () => {
    const w = world(10);
    // Distinct keys, each soon trimmed from the stream (MAXLEN ~ 10 drops whole stream nodes).
    for (let i = 0; i < 400; i++)
      await w.streams.appendTopic('many', entry(`x${i}`, { collapseKey: `k${i}` }));
    const k = w.keys.topic('many');
    const [hlen, xlen] = await Promise.all([redis.hlen(w.keys.collapse(k)), redis.xlen(k.stream)]);
    expect(xlen).toBeLessThan(400);
    expect(hlen).toBeLessThanOrEqual(xlen + 10 + 64 + 32);
  });
});
