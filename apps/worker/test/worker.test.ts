import type { FanoutJob } from '@herald/protocol';
import {
  createDelivery,
  createRedis,
  FANOUT_JOB,
  FANOUT_QUEUE,
  fanoutJobOptions,
  type InboxAppend,
  type NewEntry,
  queueOptions,
  Streams,
} from '@herald/store';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerApp } from '../src/app.js';
import { Fanout, type FanoutResult } from '../src/fanout.js';
import { notification, silent, startRedis, type TestRedis, until, workerConfig, world } from './helpers.js';

let server: TestRedis;
let redis: Redis;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  redis?.disconnect();
  await server?.stop();
});

/** Streams whose Nth appendInboxes call fails once, before or after it appended. */
class FlakyStreams extends Streams {
  calls = 0;
  failAt = 0;
  failAfterAppend = false;
  override async appendInboxes(
    devices: readonly string[],
    entry: NewEntry,
    now?: number,
    once?: boolean,
  ): Promise<InboxAppend[]> {
    const call = ++this.calls;
    if (call === this.failAt && !this.failAfterAppend) throw new Error('injected failure before append');
    const out = await super.appendInboxes(devices, entry, now, once);
    if (call === this.failAt) throw new Error('injected failure after append');
    return out;
  }
}

async function flakyWorld(prefix: string) {
  const w = world(redis, prefix, 500);
  const streams = new FlakyStreams(redis, w.keys, {
    inboxMaxLen: 10_000,
    topicMaxLen: 10_000,
    keepMs: 60_000,
  });
  const delivery = createDelivery({ redis, keys: w.keys, streams, status: w.status, devices: w.devices });
  const fanout = new Fanout({ ...w.deps, delivery });
  const opts = { prefix: queueOptions(w.keys).prefix };
  const queue = new Queue<FanoutJob>(FANOUT_QUEUE, { connection: new Redis(server.url), ...opts });
  const bull = createRedis(server.url, 'bullmq');
  const worker = new Worker<FanoutJob, FanoutResult>(FANOUT_QUEUE, (job) => fanout.process(job), {
    connection: bull,
    ...opts,
    concurrency: 1,
  });
  const failures: string[] = [];
  worker.on('failed', (_job, err) => failures.push(err.message));
  closers.push(async () => {
    await worker.close();
    await queue.close();
    bull.disconnect();
  });
  await worker.waitUntilReady();
  return { w, streams, queue, worker, failures };
}

function completion(worker: Worker<FanoutJob, FanoutResult>, id: string, timeoutMs = 10_000) {
  return new Promise<FanoutResult>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`job ${id} did not complete`)), timeoutMs);
    worker.on('completed', (job, result) => {
      if (job.id !== id) return;
      clearTimeout(timer);
      resolve(result);
    });
  });
}

describe('BullMQ worker retries', () => {
  const devices = Array.from({ length: 2000 }, (_, i) => `dev-${i}`);

  it('a retry after a failure between append and doorbell appends the chunk in flight once', async () => {
    const { w, streams, queue, worker, failures } = await flakyWorld('retry-after');
    streams.failAt = 3;
    streams.failAfterAppend = true;
    const job = await notification(w, { devices });
    const done = completion(worker, job.id);
    await queue.add(FANOUT_JOB, job, { jobId: job.id, attempts: 3 });
    expect(await done).toEqual({ outcome: 'sent' });

    expect(failures).toEqual(['injected failure after append']);
    // Every chunk once: the retried chunk 3 finds the marks of its first run (lib/append.lua),
    // so no inbox holds a second copy under the same id (before, chunk 3's inboxes held 2).
    const heads = await w.streams.heads(devices.map((d) => w.keys.inbox(d)));
    expect(heads.every((h) => h === 1)).toBe(true);
    expect(streams.calls).toBe(5);
    const s = await w.status.get(job.id);
    expect(s?.state).toBe('sent');
    expect(s?.counts.targets).toBe(2000);
    expect((await queue.getJob(job.id))?.progress).toEqual({ done: 2000 });
  });

  it('a retry after a failure before append appends every device exactly once', async () => {
    const { w, streams, queue, worker, failures } = await flakyWorld('retry-before');
    streams.failAt = 2;
    const job = await notification(w, { devices });
    const done = completion(worker, job.id);
    await queue.add(FANOUT_JOB, job, { jobId: job.id, attempts: 3 });
    expect(await done).toEqual({ outcome: 'sent' });

    expect(failures).toEqual(['injected failure before append']);
    const heads = await w.streams.heads(devices.map((d) => w.keys.inbox(d)));
    expect(heads.every((h) => h === 1)).toBe(true);
    expect(streams.calls).toBe(5);
    expect((await w.status.get(job.id))?.counts.targets).toBe(2000);
  });
});

describe('startWorkerApp', () => {
  it('runs queued fan-outs with the API job options and answers health probes', async () => {
    const app = await startWorkerApp(workerConfig(server.url, 'app'), silent);
    closers.push(() => app.close());
    const w = world(redis, 'app');
    const queue = new Queue<FanoutJob>(FANOUT_QUEUE, {
      connection: new Redis(server.url),
      ...queueOptions(w.keys),
    });
    closers.push(() => queue.close());

    const job = await notification(w, { devices: ['d1', 'd2'] });
    await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id));
    await until('status sent', async () =>
      (await w.status.get(job.id))?.state === 'sent' ? true : undefined,
    );
    expect((await w.status.get(job.id))?.counts.targets).toBe(2);
    expect(await w.streams.heads([w.keys.inbox('d1'), w.keys.inbox('d2')])).toEqual([1, 1]);

    expect((await fetch(`${app.healthUrl}/healthz`)).status).toBe(200);
    await until('ready', async () =>
      (await fetch(`${app.healthUrl}/readyz`)).status === 200 ? true : undefined,
    );

    expect(await app.close()).toBe('closed');
    expect(app.worker.isRunning()).toBe(false);
    await expect(fetch(`${app.healthUrl}/healthz`)).rejects.toThrow();
  });

  it("runs each app's jobs on that app's keys; a job without app is the default app's", async () => {
    const app = await startWorkerApp(workerConfig(server.url, 'apps'), silent);
    closers.push(() => app.close());
    const [def, shop] = [world(redis, 'apps'), world(redis, 'apps', 500, 'shop')];
    const queue = new Queue<FanoutJob>(FANOUT_QUEUE, {
      connection: new Redis(server.url),
      ...queueOptions(def.keys),
    });
    closers.push(() => queue.close());
    const a = await notification(def, { devices: ['same'] });
    const b = await notification(shop, { devices: ['same'] });
    expect(a.app).toBeUndefined();
    expect(b.app).toBe('shop');
    // Same notification ids in both apps too: each app's status is its own.
    const b2 = await notification(shop, { devices: ['same'] });
    await shop.status.create(a.id, { state: 'queued', target: 'devices', createdAt: a.ts, exp: a.exp });
    for (const j of [a, b, b2, { ...a, app: 'shop', to: { devices: ['only-shop'] } }])
      await queue.add(FANOUT_JOB, j, fanoutJobOptions(`${j.app ?? 'default'}-${j.id}`));
    for (const [w, id] of [
      [def, a.id],
      [shop, b.id],
      [shop, b2.id],
      [shop, a.id],
    ] as const)
      await until(`${w.keys.appId} ${id} sent`, async () =>
        (await w.status.get(id))?.state === 'sent' ? true : undefined,
      );
    expect(await redis.xlen('apps:{d:same}:inbox')).toBe(1);
    expect(await redis.xlen('apps:a:shop:{d:same}:inbox')).toBe(2);
    expect(await redis.xlen('apps:a:shop:{d:only-shop}:inbox')).toBe(1);
    expect(await redis.exists('apps:{d:only-shop}:inbox')).toBe(0);
    expect((await def.status.get(a.id))?.counts.targets).toBe(1);
  });

  it('stops within its deadline when Redis is gone', async () => {
    const own = await startRedis();
    closers.push(() => own.stop());
    const app = await startWorkerApp(workerConfig(own.url, 'gone'), silent);
    closers.push(() => app.close());
    await app.worker.waitUntilReady();
    await own.stop();
    const started = Date.now();
    expect(await app.close(300)).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
