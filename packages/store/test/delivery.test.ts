import { type RedisClusterHandle, startRedis, startRedisCluster } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDelivery,
  createRedis,
  type Delivery,
  Devices,
  decodeDoorbell,
  encodeDoorbell,
  Keys,
  type NewEntry,
  Nodes,
  type RedisClient,
  ScriptedDelivery,
  StatusStore,
  SteppedDelivery,
  Streams,
  Subscriber,
} from '../src/index.js';

/**
 * The Delivery contract, on one Redis (ScriptedDelivery: one script call) and on a Redis Cluster
 * (SteppedDelivery: keys in different slots, sharded pub/sub): both must write the same streams,
 * statuses and doorbells.
 */
const modes = [
  {
    name: 'one Redis',
    impl: ScriptedDelivery,
    start: async () => {
      const s = await startRedis({ appendonly: false });
      return { url: s.url, stop: () => s.stop() };
    },
  },
  {
    name: 'Redis Cluster',
    impl: SteppedDelivery,
    start: async () => {
      const c: RedisClusterHandle = await startRedisCluster({ masters: 3 });
      return { url: c.url, stop: () => c.stop() };
    },
  },
];

const entry = (id: string, data = '{"a":1}'): NewEntry => ({
  id,
  data,
  ts: Date.now(),
  exp: Date.now() + 60_000,
});

describe.each(modes)('Delivery on $name', (mode) => {
  let server: Awaited<ReturnType<(typeof mode)['start']>>;
  let redis: RedisClient;
  let sub: Subscriber;
  let n = 0;
  const got: [string, string][] = [];

  /** A fresh key prefix per test, with the store parts and a delivery on it. */
  function world(app?: string) {
    const base = new Keys(`dt${++n}`);
    const keys = app ? base.forApp(app) : base;
    const streams = new Streams(redis, keys, { inboxMaxLen: 1000, topicMaxLen: 1000, keepMs: 1000 });
    const status = new StatusStore(redis, keys, 60_000);
    const devices = new Devices(redis, keys, 60_000);
    const delivery: Delivery = createDelivery({ redis, keys, streams, status, devices });
    /** Devices saying hello on `node` as a push node does (presence there; all of user `u`). */
    const hello = (node: string, ...ds: string[]) =>
      devices.connect(
        ds.map((device) => ({ device, user: 'u' })),
        node,
        60_000,
      );
    return { keys, streams, status, devices, delivery, hello };
  }

  /** Messages on `channel` once `count` have arrived (bounded wait). */
  async function bells(channel: string, count: number): Promise<string[]> {
    const on = () => got.filter(([c]) => c === channel).map(([, m]) => m);
    const deadline = Date.now() + 5000;
    while (on().length < count) {
      if (Date.now() > deadline) throw new Error(`${count} doorbells on ${channel} not seen within 5 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return on();
  }

  beforeAll(async () => {
    server = await mode.start();
    redis = createRedis(server.url, 'background');
    sub = new Subscriber(createRedis(server.url, 'subscriber'));
    sub.onMessage((c, m) => got.push([c, m]));
  }, 60_000);
  afterAll(async () => {
    sub?.redis.disconnect();
    redis?.disconnect();
    await server?.stop();
  });

  it('is chosen from the connection', () => {
    expect(world().delivery).toBeInstanceOf(mode.impl);
  });

  it('to one device: appends after the seqs it has, records it sent, rings each live node once', async () => {
    const w = world();
    await w.hello('node-x', 'd1');
    await w.hello('node-y', 'd1');
    await redis.hset(w.keys.presence('d1'), 'node-dead', Date.now() - 1);
    await sub.subscribe(w.keys.nodeChannel('node-x'), w.keys.nodeChannel('node-y'));
    await w.delivery.deliver({ devices: ['d1'] }, entry('n0'), 'sent');
    const e = entry('n1', '{"x":"\\n"}');
    expect(await w.delivery.deliver({ devices: ['d1', 'd1'] }, e, 'sent')).toEqual({
      appended: 1,
      targets: 1,
      bells: 2,
      seqs: [['d1', 2]],
    });

    const r = await w.streams.read(w.keys.inbox('d1'), 1, 10);
    expect(r.entries.map((x) => [x.seq, x.id, x.data])).toEqual([[2, 'n1', e.data]]);
    expect(await w.status.get('n1')).toMatchObject({
      state: 'sent',
      target: 'devices',
      counts: { targets: 1, delivered: 0, acked: 0, expired: 0, pushed: 0, pushFailed: 0 },
    });
    const ttl = await redis.pttl(w.keys.status('n1'));
    expect(ttl).toBeGreaterThan(100_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
    const bell = encodeDoorbell({ k: 'inbox', entry: e, to: [['d1', 2]] });
    expect((await bells(w.keys.nodeChannel('node-x'), 2))[1]).toBe(bell);
    expect((await bells(w.keys.nodeChannel('node-y'), 2))[1]).toBe(bell);
    expect(decodeDoorbell(bell)).toEqual({ k: 'inbox', entry: e, to: [['d1', 2]] });
    expect(await redis.hkeys(w.keys.presence('d1'))).not.toContain('node-dead');
  });

  it('to several devices: each inbox once, one doorbell per node listing its devices', async () => {
    const w = world();
    await w.hello('node-1', 'a', 'b');
    await w.hello('node-2', 'c');
    await sub.subscribe(w.keys.nodeChannel('node-1'), w.keys.nodeChannel('node-2'));
    const e = entry('m1');
    expect(await w.delivery.deliver({ devices: ['a', 'b', 'c', 'd', 'a'] }, e, 'sent')).toEqual({
      appended: 4,
      targets: 4,
      bells: 2,
      seqs: [
        ['a', 1],
        ['b', 1],
        ['c', 1],
        ['d', 1],
      ],
    });
    for (const d of ['a', 'b', 'c', 'd']) expect(await w.streams.head(w.keys.inbox(d))).toBe(1);
    expect(await w.status.get('m1')).toMatchObject({ state: 'sent', counts: { targets: 4 } });
    const [one] = await bells(w.keys.nodeChannel('node-1'), 1);
    expect(decodeDoorbell(one as string)).toMatchObject({
      k: 'inbox',
      to: [
        ['a', 1],
        ['b', 1],
      ],
    });
    expect(await bells(w.keys.nodeChannel('node-2'), 1)).toEqual([
      encodeDoorbell({ k: 'inbox', entry: e, to: [['c', 1]] }),
    ]);
  });

  it("to a topic and to everyone: one append, one doorbell, the audience's size as targets", async () => {
    const w = world();
    for (const d of ['m1', 'm2']) await w.delivery.subscribe(d, 'news');
    await w.hello('node-m', 'm1', 'm2', 'm3');
    await sub.subscribe(w.keys.topicChannel('news'), w.keys.broadcastChannel());
    const t = entry('t1');
    const b = entry('b1');
    expect(await w.delivery.deliver({ topic: 'news' }, t, 'sent')).toEqual({
      appended: 1,
      targets: 2,
      bells: 1,
      seq: 1,
    });
    expect(await w.delivery.deliver({ broadcast: true }, b, 'sent')).toEqual({
      appended: 1,
      targets: 3,
      bells: 1,
      seq: 1,
    });
    expect(await w.status.get('t1')).toMatchObject({
      state: 'sent',
      target: 'topic',
      counts: { targets: 2 },
    });
    expect(await w.status.get('b1')).toMatchObject({
      state: 'sent',
      target: 'broadcast',
      counts: { targets: 3 },
    });
    expect(await bells(w.keys.topicChannel('news'), 1)).toEqual([
      encodeDoorbell({ k: 'stream', stream: 'topic:news', seq: 1, entry: t }),
    ]);
    expect(await bells(w.keys.broadcastChannel(), 1)).toEqual([
      encodeDoorbell({ k: 'stream', stream: 'broadcast', seq: 1, entry: b }),
    ]);
  });

  it("as a fan-out step ('count'): adds targets to the status, never creates one", async () => {
    const w = world();
    const now = Date.now();
    await w.status.create('q1', { state: 'sending', target: 'users', createdAt: now, exp: now + 60_000 });
    await w.delivery.deliver({ devices: ['u1'] }, entry('q1'), 'count');
    await w.delivery.deliver({ devices: ['u2', 'u3'] }, entry('q1'), 'count');
    await w.delivery.deliver({ topic: 'x' }, entry('gone'), 'count');
    expect(await w.status.get('q1')).toMatchObject({
      state: 'sending',
      target: 'users',
      counts: { targets: 3 },
    });
    expect(await redis.exists(w.keys.status('gone'))).toBe(0);
  });

  it("a fan-out step run again ('count') appends nothing it already appended, and rings again", async () => {
    const w = world();
    const now = Date.now();
    await w.status.create('r1', { state: 'sending', target: 'users', createdAt: now, exp: now + 60_000 });
    await w.hello('n-r', 'r1');
    await sub.subscribe(w.keys.nodeChannel('n-r'));
    const first = [
      await w.delivery.deliver({ devices: ['r1'] }, entry('r1'), 'count'),
      await w.delivery.deliver({ devices: ['r2', 'r3'] }, entry('r1'), 'count'),
      await w.delivery.deliver({ topic: 'rt' }, entry('r1'), 'count'),
    ];
    // The same steps again (a retry), then a step with one new device beside a done one.
    const again = [
      await w.delivery.deliver({ devices: ['r1'] }, entry('r1'), 'count'),
      await w.delivery.deliver({ devices: ['r2', 'r3'] }, entry('r1'), 'count'),
      await w.delivery.deliver({ topic: 'rt' }, entry('r1'), 'count'),
      await w.delivery.deliver({ devices: ['r3', 'r4'] }, entry('r1'), 'count'),
    ];
    expect(first.map((d) => d.appended)).toEqual([1, 2, 1]);
    expect(again.map((d) => d.appended)).toEqual([0, 0, 0, 1]);
    const heads = await w.streams.heads(['r1', 'r2', 'r3', 'r4'].map((d) => w.keys.inbox(d)));
    expect(heads).toEqual([1, 1, 1, 1]);
    expect(await w.streams.heads([w.keys.topic('rt')])).toEqual([1]);
    // Targets are counted by every run (a run may have failed between append and count):
    // 1 + 2 + 0 (the topic has no members), then 1 + 2 + 0 + 2.
    expect((await w.status.get('r1'))?.counts.targets).toBe(8);
    // The device on n-r was rung by both runs (its node drops the second by seq).
    expect(await bells(w.keys.nodeChannel('n-r'), 2)).toHaveLength(2);
    // A direct publish ('sent') is not marked: the API's Idempotency-Key covers its retries.
    expect(await redis.exists(w.keys.appendMark(w.keys.inbox('r1'), 'r1'))).toBe(1);
    await w.delivery.deliver({ devices: ['r5'] }, entry('s5'), 'sent');
    expect(await redis.exists(w.keys.appendMark(w.keys.inbox('r5'), 's5'))).toBe(0);
  });

  it('subscribes from the head (keeping a cursor it has), unsubscribes, and rings the nodes holding the device', async () => {
    const w = world();
    await w.hello('node-s', 's1');
    await sub.subscribe(w.keys.nodeChannel('node-s'));
    await w.delivery.deliver({ topic: 'alerts' }, entry('before-1'), 'sent');
    await w.delivery.deliver({ topic: 'alerts' }, entry('before-2'), 'sent');

    await w.delivery.subscribe('s1', 'alerts');
    expect(await w.devices.topicsOf('s1')).toEqual(['alerts']);
    expect(await w.devices.topicMemberCount('alerts')).toBe(1);
    expect(await w.devices.cursor('s1', 'topic:alerts')).toBe(2);
    expect(await redis.pttl(w.keys.cursors('s1'))).toBeGreaterThan(50_000);
    await w.delivery.deliver({ topic: 'alerts' }, entry('after'), 'sent');
    await w.delivery.subscribe('s1', 'alerts');
    expect(await w.devices.cursor('s1', 'topic:alerts')).toBe(2);

    await w.delivery.unsubscribe('s1', 'alerts');
    expect(await w.devices.topicsOf('s1')).toEqual([]);
    expect(await w.devices.topicMemberCount('alerts')).toBe(0);
    expect(await w.devices.cursor('s1', 'topic:alerts')).toBeUndefined();
    expect(await bells(w.keys.nodeChannel('node-s'), 3)).toEqual([
      encodeDoorbell({ k: 'sub', device: 's1', topic: 'alerts' }),
      encodeDoorbell({ k: 'sub', device: 's1', topic: 'alerts' }),
      encodeDoorbell({ k: 'unsub', device: 's1', topic: 'alerts' }),
    ]);
    // A device that is not connected anywhere: nothing to ring.
    await w.delivery.subscribe('offline', 'alerts');
    expect(await w.devices.topicsOf('offline')).toEqual(['alerts']);
  });

  it("an app's Keys: the same device, topic and id in two apps are two of each, doorbells included", async () => {
    const a = world('app-a');
    // Both apps under one deployment prefix.
    const [ka, kb] = [a.keys, a.keys.forApp('app-b')];
    const bStreams = new Streams(redis, kb, { inboxMaxLen: 1000, topicMaxLen: 1000, keepMs: 1000 });
    const bStatus = new StatusStore(redis, kb, 60_000);
    const bDevices = new Devices(redis, kb, 60_000);
    // The app's delivery from the other app's (what the API does per request), cached per app.
    const bDelivery = a.delivery.forKeys(kb);
    expect(a.delivery.forKeys(kb)).toBe(bDelivery);
    expect(a.delivery.forKeys(ka)).toBe(a.delivery);
    await a.hello('node-1', 'same');
    await bDevices.connect([{ device: 'same', user: 'u' }], 'node-1', 60_000);
    await sub.subscribe(ka.nodeChannel('node-1'), kb.nodeChannel('node-1'), ka.topicChannel('news'));
    await a.delivery.subscribe('same', 'news');
    await a.delivery.deliver({ devices: ['same'] }, entry('n-a'), 'sent');
    await bDelivery.deliver({ devices: ['same'] }, entry('n-b'), 'sent');
    await bDelivery.deliver({ devices: ['same'] }, entry('n-b2'), 'sent');
    await a.delivery.deliver({ topic: 'news' }, entry('t-a'), 'sent');
    expect((await a.streams.read(ka.inbox('same'), 0, 10)).entries.map((e) => e.id)).toEqual(['n-a']);
    expect((await bStreams.read(kb.inbox('same'), 0, 10)).entries.map((e) => e.id)).toEqual(['n-b', 'n-b2']);
    expect(await a.status.get('n-b')).toBeUndefined();
    expect(await bStatus.get('n-b')).toMatchObject({ state: 'sent' });
    expect(await bDevices.topicsOf('same')).toEqual([]);
    expect(await bDevices.topicMemberCount('news')).toBe(0);
    expect(await a.devices.topicMemberCount('news')).toBe(1);
    const bellA = await bells(ka.nodeChannel('node-1'), 2);
    expect(bellA.map((m) => decodeDoorbell(m)?.k)).toEqual(['sub', 'inbox']);
    expect(await bells(kb.nodeChannel('node-1'), 2)).toHaveLength(2);
    expect(await bells(ka.topicChannel('news'), 1)).toHaveLength(1);
    expect(got.filter(([c]) => c === kb.topicChannel('news'))).toEqual([]);
    expect(await redis.xlen(kb.inbox('same').stream)).toBe(2);
    expect(await redis.xlen(ka.inbox('same').stream)).toBe(1);
  });

  it("sums an app's connections over the other live nodes, pruning dead nodes' counts", async () => {
    const root = new Keys(`dt${++n}`);
    const nodes = new Nodes(redis, root);
    const [x, y] = [root.forApp('x'), root.forApp('y')];
    const now = Date.now();
    for (const [id, at] of [
      ['n1', now],
      ['n2', now],
      ['n3', now],
      ['n-dead', now - 60_000],
    ] as const)
      await nodes.heartbeat(id, 0, at);
    const counts = (a: number, b: number) => [
      { keys: x, connections: a },
      { keys: y, connections: b },
    ];
    await nodes.appConnections('n-dead', counts(9, 9), 10_000, now);
    await nodes.appConnections('n2', counts(4, 0), 10_000, now);
    expect(await nodes.appConnections('n3', counts(1, 1), 10_000, now)).toEqual([4, 0]);
    expect(await nodes.appConnections('n1', counts(3, 2), 10_000, now)).toEqual([5, 1]);
    expect(await redis.hkeys(x.appConnections())).toEqual(expect.not.arrayContaining(['n-dead']));
    await nodes.remove('n1', [x, y]);
    expect(await nodes.appConnections('n2', counts(4, 0), 10_000, now)).toEqual([1, 1]);
  });
});
