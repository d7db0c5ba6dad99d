import {
  type RedisClusterHandle,
  type RedisSentinelHandle,
  startRedisCluster,
  startRedisSentinel,
} from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppDevice } from '../support/devices.js';
import { loopback, type SystemStack, startSystem } from '../support/system.js';

/**
 * The end-to-end path, resume and a failover, on Redis Cluster (3 masters, 3 replicas, sharded
 * pub/sub) and on Redis Sentinel (1 master, 1 replica, 3 sentinels).
 */
interface Mode {
  name: string;
  start(): Promise<{ url: string; failover(): Promise<unknown>; stop(): Promise<void> }>;
}

const modes: Mode[] = [
  {
    name: 'Redis Cluster',
    async start() {
      const c: RedisClusterHandle = await startRedisCluster({ masters: 3 });
      return {
        url: c.url,
        // Fail over the master that holds the test device's inbox and queue would be ideal; any
        // master moves a third of the slots, which is what a real failover does.
        failover: async () => c.failover((await c.masters())[0]!),
        stop: () => c.stop(),
      };
    },
  },
  {
    name: 'Redis Sentinel',
    async start() {
      const s: RedisSentinelHandle = await startRedisSentinel();
      return { url: s.url, failover: () => s.failover(), stop: () => s.stop() };
    },
  },
];

describe.each(modes)('on $name', (mode) => {
  let redis: Awaited<ReturnType<Mode['start']>>;
  let sys: SystemStack;
  let n = 0;
  const device = (name: string, topics: string[] = [], user?: string) =>
    new AppDevice(name, sys.wsUrl, () => sys.token(name, user), loopback(500 + n++), topics);

  beforeAll(async () => {
    redis = await mode.start();
    sys = await startSystem({ nodes: 3, redisUrl: redis.url });
  }, 90_000);
  afterAll(async () => {
    await sys?.teardown();
    await redis?.stop();
  }, 60_000);

  it('delivers to a device, to every device of a user, and to topic subscribers', async () => {
    const a = device('m-a', ['modes.news'], 'm-user');
    const b = device('m-b', ['modes.news'], 'm-user');
    await Promise.all([a.client.connect(), b.client.connect()]);
    await Promise.all([a, b].map((d) => d.until(() => d.subscribed.has('modes.news'), 'subscribed', 10_000)));
    const one = await sys.publish({ to: { devices: ['m-a'] }, data: 'one' });
    const both = await sys.publish({ to: { users: ['m-user'] }, data: 'both' });
    const topic = await sys.publish({ to: { topic: 'modes.news' }, data: 'topic' });
    expect([one.status, both.status, topic.status]).toEqual([202, 202, 202]);
    await a.until(() => a.seen.length === 3, 'three', 15_000);
    await b.until(() => b.seen.length === 2, 'two', 15_000);
    expect(a.ids().sort()).toEqual([one.body.id, both.body.id, topic.body.id].sort());
    expect(b.ids().sort()).toEqual([both.body.id, topic.body.id].sort());
    await Promise.all([a.client.close(), b.client.close()]);
  }, 60_000);

  it('resumes a device from its cursor after it was away', async () => {
    const d = device('m-resume');
    await d.client.connect();
    const first = await sys.publish({ to: { devices: ['m-resume'] }, data: 0 });
    await d.until(() => d.seen.length === 1, 'first', 10_000);
    await d.client.close();
    const missed: string[] = [];
    for (let i = 1; i <= 5; i++)
      missed.push((await sys.publish({ to: { devices: ['m-resume'] }, data: i })).body.id as string);
    // Same SDK instance: its cursors say where it stopped.
    await d.client.connect();
    await d.until(() => d.seen.length === 6, 'the missed five', 15_000);
    expect(d.ids()).toEqual([first.body.id, ...missed]);
  }, 60_000);

  it('survives a failover: every publish acknowledged before it is delivered', async () => {
    const d = device('m-fail');
    await d.client.connect();
    const before: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await sys.publish({ to: { devices: ['m-fail'] }, data: i });
      expect(r.status).toBe(202);
      before.push(r.body.id as string);
    }
    await redis.failover();
    // After the failover, publishing works again (503s while clients find the new master are allowed).
    const after: string[] = [];
    const deadline = Date.now() + 30_000;
    while (after.length < 20 && Date.now() < deadline) {
      const r = await sys.publish({ to: { devices: ['m-fail'] }, data: 'after' });
      if (r.status === 202) after.push(r.body.id as string);
      else expect(r.status).toBe(503);
    }
    expect(after.length).toBe(20);
    await d.until(
      () => [...before, ...after].every((id) => d.ids().includes(id)),
      'every acknowledged publish',
      60_000,
    );
    expect(new Set(d.ids()).size).toBe(d.ids().length);
    await d.client.close();
  }, 120_000);
});
