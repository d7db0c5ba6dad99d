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
  function world() {
    const keys = new Keys(`dt${++n}`);
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
});
