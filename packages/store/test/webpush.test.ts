import { startRedis, startRedisCluster } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, Devices, Keys, type RedisClient, WebPushStore } from '../src/index.js';

// Two apps' keys (issue #18 gives each app its own Keys): the store never mixes them.
const keys = new Keys('wp');
const other = new Keys('wp-other');
let server: { url: string; stop(): Promise<unknown> };
let redis: RedisClient;

const sub = (n: number, createdAt = n) => ({
  endpoint: `https://push.example.com/s/${n}`,
  keys: { p256dh: `p${n}`, auth: `a${n}` },
  createdAt,
});

// One Redis: one script call per chunk. A Redis Cluster: a device's keys share a slot, two
// devices' do not, so one call per device (pipelined); same answers.
const modes = [
  { name: 'one Redis', calls: (_n: number) => 1, start: () => startRedis({ appendonly: false }) },
  { name: 'Redis Cluster', calls: (n: number) => n, start: () => startRedisCluster({ masters: 3 }) },
];

describe.each(modes)('WebPushStore on $name', (mode) => {
  beforeAll(async () => {
    server = await mode.start();
    redis = createRedis(server.url, 'background');
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('keeps at most maxPerDevice subscriptions, dropping the oldest, and replaces one by endpoint', async () => {
    const store = new WebPushStore(redis, keys, { maxPerDevice: 2, retentionMs: 60_000 });
    await store.put('d1', sub(1, 100));
    await store.put('d1', sub(2, 200));
    await store.put('d1', sub(1, 300)); // same endpoint: refreshed, not a third
    expect((await store.list('d1')).map((s) => s.endpoint)).toEqual([sub(2).endpoint, sub(1).endpoint]);
    await store.put('d1', sub(3, 400));
    expect((await store.list('d1')).map((s) => s.createdAt)).toEqual([300, 400]);
    expect(await store.removeEndpoint('d1', sub(1).endpoint)).toBe(true);
    expect(await store.removeEndpoint('d1', sub(1).endpoint)).toBe(false);
    expect(await new WebPushStore(redis, other, { maxPerDevice: 2, retentionMs: 60_000 }).list('d1')).toEqual(
      [],
    );
    expect(await redis.pttl(keys.webpush('d1'))).toBeGreaterThan(0);
  });

  it('finds, in one call, the devices with a subscription whose cursor is below the seq', async () => {
    const store = new WebPushStore(redis, keys, { maxPerDevice: 5, retentionMs: 60_000 });
    const devices = new Devices(redis, keys, 60_000);
    await store.put('acked', sub(10));
    await store.put('behind', sub(11));
    await store.put('nocursor', sub(12));
    await devices.advanceCursors(
      new Map([
        ['acked', new Map([['inbox', 5]])],
        ['behind', new Map([['inbox', 4]])],
        ['nosub', new Map([['inbox', 0]])],
      ]),
    );
    const before = store.roundTrips;
    const due = await store.due(
      ['acked', 'behind', 'nocursor', 'nosub'].map((device) => ({ device, stream: 'inbox', seq: 5 })),
    );
    expect(store.roundTrips - before).toBe(mode.calls(4));
    expect(due.map((d) => [d.device, d.subscriptions.map((s) => s.endpoint)])).toEqual([
      ['behind', [sub(11).endpoint]],
      ['nocursor', [sub(12).endpoint]],
    ]);
  });
});
