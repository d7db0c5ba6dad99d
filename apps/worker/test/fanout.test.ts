import type { FanoutJob } from '@herald/protocol';
import { decodeDoorbell, FANOUT_JOB, FANOUT_QUEUE, fanoutJobOptions, queueOptions } from '@herald/store';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startWorkerApp } from '../src/app.js';
import { Fanout } from '../src/fanout.js';
import {
  Inbox,
  notification,
  silent,
  startRedis,
  stubJob,
  type TestRedis,
  until,
  type World,
  workerConfig,
  world,
} from './helpers.js';

let server: TestRedis;
let redis: Redis;
let sub: Redis;
let inbox: Inbox;
let n = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  sub = new Redis(server.url);
  inbox = new Inbox(sub);
});

afterAll(async () => {
  sub?.disconnect();
  redis?.disconnect();
  await server?.stop();
});

/** Each test gets its own key prefix, so tests never see each other's streams or channels. */
function fresh(chunk?: number): World {
  return world(redis, `t${++n}`, chunk);
}

type DeviceOf = readonly [device: string, user: string];

/**
 * Devices saying hello on `node` the way a push node does (`Devices.connect`, hello.lua): each
 * live there and registered to its user (and to the broadcast audience).
 */
function hello(w: World, node: string, devices: readonly DeviceOf[]) {
  return w.devices.connect(
    devices.map(([device, user]) => ({ device, user })),
    node,
    60_000,
  );
}

/** Devices that said hello once and have gone since: still registered, live on no node. */
async function left(w: World, devices: readonly DeviceOf[]) {
  await hello(w, 'node-gone', devices);
  await w.presence.removeMany(
    devices.map(([d]) => d),
    'node-gone',
  );
}

async function inboxSeqs(w: World, device: string) {
  const r = await w.streams.read(w.keys.inbox(device), 0, 100);
  return r.entries.map((e) => e.seq);
}

describe('Fanout', () => {
  it('appends to each device inbox with contiguous seqs and rings the node holding a device', async () => {
    const w = fresh();
    const channel = w.keys.nodeChannel('node-a');
    await sub.subscribe(channel);
    await hello(w, 'node-a', [['d1', 'u1']]);

    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const job = await notification(w, { devices: ['d1', 'd2', 'd3'] }, { data: `{"i":${i}}` });
      ids.push(job.id);
      expect(await w.fanout.process(stubJob(job))).toEqual({ outcome: 'sent' });
    }

    for (const d of ['d1', 'd2', 'd3']) expect(await inboxSeqs(w, d)).toEqual([1, 2, 3]);
    const entries = (await w.streams.read(w.keys.inbox('d2'), 0, 10)).entries;
    expect(entries.map((e) => [e.id, e.data])).toEqual(ids.map((id, i) => [id, `{"i":${i + 1}}`]));

    const bells = (await inbox.settle(redis, channel)).map((m) => decodeDoorbell(m));
    expect(bells).toEqual(
      ids.map((id, i) => ({
        k: 'inbox',
        to: [['d1', i + 1]],
        entry: { id, data: `{"i":${i + 1}}`, ts: expect.any(Number), exp: expect.any(Number) },
      })),
    );
    for (const id of ids) {
      const s = await w.status.get(id);
      expect(s?.state).toBe('sent');
      expect(s?.counts.targets).toBe(3);
    }
  });

  it('deduplicates devices and groups doorbells per node', async () => {
    const w = fresh();
    const [a, b] = [w.keys.nodeChannel('node-a'), w.keys.nodeChannel('node-b')];
    await sub.subscribe(a, b);
    await hello(w, 'node-a', [
      ['d1', 'u1'],
      ['d2', 'u2'],
    ]);
    await hello(w, 'node-b', [['d3', 'u3']]);
    const job = await notification(w, { devices: ['d1', 'd2', 'd1', 'd3', 'd4', 'd2'] });
    await w.fanout.process(stubJob(job));

    for (const d of ['d1', 'd2', 'd3', 'd4']) expect(await inboxSeqs(w, d)).toEqual([1]);
    expect((await inbox.settle(redis, a)).map((m) => decodeDoorbell(m))).toMatchObject([
      {
        k: 'inbox',
        to: [
          ['d1', 1],
          ['d2', 1],
        ],
      },
    ]);
    expect((await inbox.settle(redis, b)).map((m) => decodeDoorbell(m))).toMatchObject([
      { k: 'inbox', to: [['d3', 1]] },
    ]);
    expect((await w.status.get(job.id))?.counts.targets).toBe(4);
  });

  it('delivers to every device of each user', async () => {
    const w = fresh();
    const channel = w.keys.nodeChannel('node-a');
    await sub.subscribe(channel);
    await hello(w, 'node-a', [
      ['u1-phone', 'u1'],
      ['u2-watch', 'u2'],
    ]);
    await left(w, [
      ['u1-laptop', 'u1'],
      ['u2-phone', 'u2'],
      ['u3-phone', 'u3'],
    ]);

    const job = await notification(w, { users: ['u1', 'u2', 'u1'] });
    await w.fanout.process(stubJob(job));

    for (const d of ['u1-phone', 'u1-laptop', 'u2-phone', 'u2-watch'])
      expect(await inboxSeqs(w, d)).toEqual([1]);
    expect(await inboxSeqs(w, 'u3-phone')).toEqual([]);
    // Both users' devices fit one chunk: one doorbell for the node.
    const bells = (await inbox.settle(redis, channel)).map((m) => decodeDoorbell(m));
    expect(bells).toHaveLength(1);
    expect(bells[0]).toMatchObject({ k: 'inbox', entry: { id: job.id, data: job.data } });
    const to = bells[0]?.k === 'inbox' ? bells[0].to : [];
    expect(to.sort()).toEqual([
      ['u1-phone', 1],
      ['u2-watch', 1],
    ]);
    const s = await w.status.get(job.id);
    expect(s?.state).toBe('sent');
    expect(s?.counts.targets).toBe(4);
  });

  it('packs users into chunks and saves progress per finished user', async () => {
    const w = fresh(2);
    for (const u of ['u1', 'u2', 'u3'])
      await left(
        w,
        ['a', 'b', 'c'].map((d) => [`${u}-${d}`, u] as const),
      );
    const deliver = vi.spyOn(w.delivery, 'deliver');
    const job = stubJob(await notification(w, { users: ['u1', 'u2', 'u3'] }));
    await w.fanout.process(job);

    expect(deliver.mock.calls.map(([to]) => ('devices' in to ? to.devices.length : -1))).toEqual([
      2, 2, 2, 2, 1,
    ]);
    for (const u of ['u1', 'u2', 'u3'])
      for (const d of ['a', 'b', 'c']) expect(await inboxSeqs(w, `${u}-${d}`)).toEqual([1]);
    // After the 2nd chunk (devices 3 and 4) only u1 is complete, and so on.
    expect(job.updates).toEqual([{ done: 0 }, { done: 1 }, { done: 2 }, { done: 2 }, { done: 3 }]);
    expect((await w.status.get(job.data.id))?.counts.targets).toBe(9);
  });

  it('resumes users after the last finished user', async () => {
    const w = fresh();
    await left(
      w,
      ['u1', 'u2', 'u3'].map((u) => [`${u}-phone`, u] as const),
    );
    const job = await notification(w, { users: ['u1', 'u2', 'u3'] });
    await w.status.transition(job.id, 'sending', ['queued']);
    const entry = { id: job.id, data: job.data, ts: job.ts, exp: job.exp };
    await w.delivery.deliver({ devices: ['u1-phone', 'u2-phone'] }, entry, 'count');

    await w.fanout.process(stubJob(job, { done: 2 }));

    for (const d of ['u1-phone', 'u2-phone', 'u3-phone']) expect(await inboxSeqs(w, d)).toEqual([1]);
    expect((await w.status.get(job.id))?.counts.targets).toBe(3);
  });

  it('appends a topic notification once and rings the topic channel', async () => {
    const w = fresh();
    const channel = w.keys.topicChannel('news');
    await sub.subscribe(channel);
    for (const d of ['d1', 'd2', 'd3']) await w.delivery.subscribe(d, 'news');

    const job = await notification(w, { topic: 'news' });
    await w.fanout.process(stubJob(job));

    const r = await w.streams.read(w.keys.topic('news'), 0, 10);
    expect(r.head).toBe(1);
    expect(r.entries).toEqual([{ seq: 1, id: job.id, data: job.data, ts: job.ts, exp: job.exp }]);
    expect(await inboxSeqs(w, 'd1')).toEqual([]);
    expect((await inbox.settle(redis, channel)).map((m) => decodeDoorbell(m))).toEqual([
      {
        k: 'stream',
        stream: 'topic:news',
        seq: 1,
        entry: { id: job.id, data: job.data, ts: job.ts, exp: job.exp },
      },
    ]);
    const s = await w.status.get(job.id);
    expect(s?.state).toBe('sent');
    expect(s?.counts.targets).toBe(3);
  });

  it('appends a broadcast once and rings the broadcast channel', async () => {
    const w = fresh();
    const channel = w.keys.broadcastChannel();
    await sub.subscribe(channel);
    await left(w, [
      ['d1', 'u1'],
      ['d2', 'u2'],
    ]);

    const job = await notification(w, { broadcast: true });
    await w.fanout.process(stubJob(job));

    const r = await w.streams.read(w.keys.broadcast(), 0, 10);
    expect(r.entries.map((e) => [e.seq, e.id])).toEqual([[1, job.id]]);
    expect((await inbox.settle(redis, channel)).map((m) => decodeDoorbell(m))).toMatchObject([
      { k: 'stream', stream: 'broadcast', seq: 1, entry: { id: job.id, data: job.data } },
    ]);
    const s = await w.status.get(job.id);
    expect(s?.state).toBe('sent');
    expect(s?.counts.targets).toBe(2);
  });

  it('skips a cancelled notification', async () => {
    const w = fresh();
    const job = await notification(w, { devices: ['d1'] }, { state: 'scheduled' });
    await w.status.transition(job.id, 'cancelled', ['scheduled']);
    expect(await w.fanout.process(stubJob(job))).toEqual({ outcome: 'skipped', state: 'cancelled' });
    expect(await inboxSeqs(w, 'd1')).toEqual([]);
    expect((await w.status.get(job.id))?.state).toBe('cancelled');
  });

  it('skips a notification whose status is gone, or that was already sent', async () => {
    const w = fresh();
    const gone = { id: 'nope', to: { devices: ['d1'] }, data: '1', ts: Date.now(), exp: Date.now() + 60_000 };
    expect(await w.fanout.process(stubJob(gone))).toEqual({ outcome: 'skipped', state: '' });
    const job = await notification(w, { devices: ['d1'] });
    await w.fanout.process(stubJob(job));
    expect(await w.fanout.process(stubJob(job))).toEqual({ outcome: 'skipped', state: 'sent' });
    expect(await inboxSeqs(w, 'd1')).toEqual([1]);
  });

  it('never appends an expired notification, and counts every device it was for as expired', async () => {
    const w = fresh();
    for (const d of ['m1', 'm2', 'm3']) await w.delivery.subscribe(d, 'news');
    await left(w, [
      ['u1-a', 'u1'],
      ['u1-b', 'u1'],
    ]);
    const job = await notification(w, { devices: ['d1', 'd2', 'd1'] }, { ttlMs: -1 });
    const topic = await notification(w, { topic: 'news' }, { ttlMs: 0 });
    const users = await notification(w, { users: ['u1', 'nobody'] }, { ttlMs: -1 });
    const all = await notification(w, { broadcast: true }, { ttlMs: -1, state: 'scheduled' });
    for (const j of [job, topic, users, all])
      expect(await w.fanout.process(stubJob(j))).toEqual({ outcome: 'expired' });
    expect(await inboxSeqs(w, 'd1')).toEqual([]);
    expect(await inboxSeqs(w, 'u1-a')).toEqual([]);
    expect(await w.streams.head(w.keys.topic('news'))).toBe(0);
    expect(await w.streams.head(w.keys.broadcast())).toBe(0);
    // Devices listed (distinct), the topic's members, the users' devices, every known device.
    for (const [j, n] of [
      [job, 2],
      [topic, 3],
      [users, 2],
      [all, 2],
    ] as const)
      expect(await w.status.get(j.id)).toMatchObject({
        state: 'expired',
        counts: { targets: n, delivered: 0, acked: 0, expired: n, pushed: 0, pushFailed: 0 },
      });
  });

  it('fans out to 2,000 devices in chunks: one pipeline and one doorbell per node per chunk', async () => {
    const w = fresh(500);
    const channel = w.keys.nodeChannel('node-a');
    await sub.subscribe(channel);
    const devices = Array.from({ length: 2000 }, (_, i) => `dev-${i}`);
    await w.presence.refresh(devices, 'node-a');
    const deliver = vi.spyOn(w.delivery, 'deliver');

    const job = await notification(w, { devices });
    await w.fanout.process(stubJob(job));

    expect(deliver.mock.calls.map(([to]) => ('devices' in to ? to.devices.length : -1))).toEqual([
      500, 500, 500, 500,
    ]);
    const bells = (await inbox.settle(redis, channel)).map((m) => decodeDoorbell(m));
    expect(bells.map((b) => (b?.k === 'inbox' ? b.to.length : -1))).toEqual([500, 500, 500, 500]);
    const rung = bells.flatMap((b) => (b?.k === 'inbox' ? b.to : []));
    expect(new Set(rung.map(([d]) => d)).size).toBe(2000);
    expect(rung.every(([, seq]) => seq === 1)).toBe(true);

    const heads = await w.streams.heads(devices.map((d) => w.keys.inbox(d)));
    expect(heads.every((h) => h === 1)).toBe(true);
    const last = await w.streams.read(w.keys.inbox('dev-1999'), 0, 10);
    expect(last.entries.map((e) => e.id)).toEqual([job.id]);
    const s = await w.status.get(job.id);
    expect(s?.state).toBe('sent');
    expect(s?.counts.targets).toBe(2000);
  });

  it('resumes devices from saved progress without appending or counting finished chunks again', async () => {
    const w = fresh(500);
    const devices = Array.from({ length: 2000 }, (_, i) => `dev-${i}`);
    const job = await notification(w, { devices });
    // A first attempt that finished two chunks and then died.
    await w.status.transition(job.id, 'sending', ['queued']);
    const entry = { id: job.id, data: job.data, ts: job.ts, exp: job.exp };
    await w.delivery.deliver({ devices: devices.slice(0, 1000) }, entry, 'count');
    const deliver = vi.spyOn(w.delivery, 'deliver');

    const stub = stubJob(job, { done: 1000 });
    await w.fanout.process(stub);

    expect(deliver.mock.calls.map(([to]) => ('devices' in to ? to.devices[0] : ''))).toEqual([
      'dev-1000',
      'dev-1500',
    ]);
    const heads = await w.streams.heads(devices.map((d) => w.keys.inbox(d)));
    expect(heads.every((h) => h === 1)).toBe(true);
    expect(stub.updates).toEqual([{ done: 1500 }, { done: 2000 }]);
    const s = await w.status.get(job.id);
    expect(s?.state).toBe('sent');
    expect(s?.counts.targets).toBe(2000);
  });

  it('delivers a topic notification once: a job whose progress says done delivers nothing again', async () => {
    const w = fresh();
    const channel = w.keys.topicChannel('sport');
    await sub.subscribe(channel);
    await w.delivery.subscribe('d1', 'sport');
    const job = await notification(w, { topic: 'sport' });
    const stub = stubJob(job);
    await w.fanout.process(stub);
    expect(stub.updates).toEqual([{ done: 1 }]);

    // A retry of the same job (say it stalled after its progress was saved).
    await w.status.transition(job.id, 'sending', ['sent']);
    await w.fanout.process(stubJob(job, stub.progress as object));
    expect(await w.streams.head(w.keys.topic('sport'))).toBe(1);
    expect((await inbox.settle(redis, channel)).map((m) => decodeDoorbell(m))).toMatchObject([
      { k: 'stream', stream: 'topic:sport', seq: 1 },
    ]);
    expect(await w.status.get(job.id)).toMatchObject({ state: 'sent', counts: { targets: 1 } });
  });

  it('rejects a malformed job without retries', async () => {
    const w = fresh();
    const bad = { id: 'x', to: { nobody: true }, data: '1', ts: 0, exp: 0 } as never;
    await expect(w.fanout.process(stubJob(bad))).rejects.toMatchObject({ name: 'UnrecoverableError' });
    await expect(new Fanout(w.deps).process(stubJob(null as never))).rejects.toThrow(/malformed/);
    const badApp = { id: 'y', to: { devices: ['d'] }, data: '1', ts: 0, exp: 0, app: 'Not:An:App' };
    await expect(w.fanout.process(stubJob(badApp))).rejects.toThrow(/malformed fan-out job: app/);
    const badKey = { id: 'z', to: { devices: ['d'] }, data: '1', ts: 0, exp: 0, collapseKey: 'a b' };
    await expect(w.fanout.process(stubJob(badKey))).rejects.toThrow(/malformed fan-out job: collapseKey/);
    const badPriority = { id: 'p', to: { devices: ['d'] }, data: '1', ts: 0, exp: 0, priority: 'normal' };
    await expect(w.fanout.process(stubJob(badPriority as never))).rejects.toThrow(
      /malformed fan-out job: priority/,
    );
  });

  it('appends collapseKey and priority with the entry: the older one with the key reads collapsed', async () => {
    const w = fresh();
    for (const priority of ['high', 'low'] as const) {
      const job = { ...(await notification(w, { users: ['u-ck'] })), collapseKey: 'k', priority };
      await hello(w, 'node-ck', [['d-ck', 'u-ck']]);
      expect(await w.fanout.process(stubJob(job))).toEqual({ outcome: 'sent' });
    }
    const r = await w.streams.read(w.keys.inbox('d-ck'), 0, 10);
    expect(r.entries.map((e) => [e.seq, e.priority, e.collapseKey, e.collapsed === true])).toEqual([
      [1, 'high', 'k', true],
      [2, 'low', 'k', false],
    ]);
  });

  it('waits on pub/sub with a bound (sanity check of the helper)', async () => {
    await expect(until('never', () => undefined, 50)).rejects.toThrow(/timed out/);
  });
});

describe('a scheduled notification that expired while no worker ran (issue #12 item 6)', () => {
  it('is never appended; the worker records every device it was for as expired', async () => {
    const prefix = 'sched-expired';
    const w = world(redis, prefix);
    // A connected device, and a topic with two members.
    await hello(w, 'node-a', [['dx', 'ux']]);
    for (const d of ['m1', 'm2']) await w.delivery.subscribe(d, 'late');
    const conn = new Redis(server.url);
    const queue = new Queue<FanoutJob>(FANOUT_QUEUE, { connection: conn, ...queueOptions(w.keys) });
    try {
      // As the API accepts them: status `scheduled`, a delayed job; deliverAt in 200 ms, ttl 1 s.
      const delayMs = 200;
      const jobs = [
        await notification(w, { devices: ['dx'] }, { state: 'scheduled', ttlMs: delayMs + 1000 }),
        await notification(w, { topic: 'late' }, { state: 'scheduled', ttlMs: delayMs + 1000 }),
      ];
      for (const job of jobs) await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id, delayMs));
      // No worker until both have expired.
      const exp = Math.max(...jobs.map((j) => j.exp));
      await until('the notifications to expire', () => (Date.now() > exp ? true : undefined), 5000);

      const app = await startWorkerApp(workerConfig(server.url, prefix), silent);
      try {
        for (const [job, n] of [
          [jobs[0], 1],
          [jobs[1], 2],
        ] as const) {
          // The job ran once the raw state (not the one status.get derives from the clock) moved.
          await until('the worker to take the job', async () =>
            (await redis.hget(w.keys.status(job!.id), 'state')) === 'expired' ? true : undefined,
          );
          expect(await w.status.get(job!.id)).toMatchObject({
            state: 'expired',
            counts: { targets: n, delivered: 0, acked: 0, expired: n, pushed: 0, pushFailed: 0 },
          });
        }
        expect(await inboxSeqs(w, 'dx')).toEqual([]);
        expect(await w.streams.head(w.keys.topic('late'))).toBe(0);
      } finally {
        await app.close();
      }
    } finally {
      await queue.close();
      conn.disconnect();
    }
  });
});
