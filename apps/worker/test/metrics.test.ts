import type { FanoutJob } from '@herald/protocol';
import { metric, parseMetrics, type Sample } from '@herald/stack';
import { FANOUT_JOB, FANOUT_QUEUE, fanoutJobOptions, queueOptions } from '@herald/store';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerApp, type WorkerApp } from '../src/app.js';
import { createHealthServer } from '../src/health.js';
import { WorkerMetrics } from '../src/metrics.js';
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

function queueOf(prefix: string) {
  const q = new Queue<FanoutJob>(FANOUT_QUEUE, {
    connection: new Redis(server.url),
    ...queueOptions(world(redis, prefix).keys),
  });
  closers.push(() => q.close());
  return q;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

describe('worker /metrics', () => {
  const PREFIX = 'wmetrics';
  let app: WorkerApp;

  beforeAll(async () => {
    const cfg = workerConfig(server.url, PREFIX);
    app = await startWorkerApp(cfg, silent);
    closers.push(() => app.close());
    await app.worker.waitUntilReady();
  });

  it('counts processed jobs by target and result, appends and doorbells', async () => {
    const w = world(redis, PREFIX);
    const queue = queueOf(PREFIX);
    const before = await scrape(app.healthUrl);
    const jobs = (result: string, target: string) =>
      metric(before, 'herald_fanout_jobs_total', { target, result, app: 'worker' });
    expect(jobs('sent', 'devices')).toBe(0);
    expect(metric(before, 'herald_fanout_appends_total', { kind: 'inbox' })).toBe(0);
    expect(metric(before, 'herald_doorbells_total', { kind: 'stream' })).toBe(0);

    // d1 is live on two nodes, d2 on one of them, d3 offline: one doorbell per node.
    // Said hello as a push node does (Devices.connect); their user is not the expired job's u1.
    const hello = (node: string, ...ds: string[]) =>
      w.devices.connect(
        ds.map((device) => ({ device, user: 'u-live' })),
        node,
        60_000,
      );
    await hello('node-a', 'd1', 'd2');
    await hello('node-b', 'd1');
    const toDevices = await notification(w, { devices: ['d1', 'd2', 'd3'] });
    const toTopic = await notification(w, { topic: 'news' });
    const cancelled = await notification(w, { broadcast: true }, { state: 'scheduled' });
    await w.status.transition(cancelled.id, 'cancelled', ['scheduled']);
    const expired = await notification(w, { users: ['u1'] }, { ttlMs: -1000 });
    const malformed = { ...(await notification(w, { devices: ['d9'] })), data: 42 } as unknown as FanoutJob;
    for (const job of [toDevices, toTopic, cancelled, expired])
      await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id));
    // attempts: 1, so its one failure is final and the test need not wait for retries.
    await queue.add(FANOUT_JOB, malformed, { jobId: malformed.id, attempts: 1 });

    let m: Sample[] = [];
    await until(
      'five job runs counted',
      async () => {
        m = await scrape(app.healthUrl);
        return (metric(m, 'herald_fanout_jobs_total') ?? 0) >= 5 ? true : undefined;
      },
      10_000,
    );
    const count = (target: string, result: string) =>
      metric(m, 'herald_fanout_jobs_total', { target, result, app: 'worker' });
    expect(count('devices', 'sent')).toBe(1);
    expect(count('topic', 'sent')).toBe(1);
    expect(count('broadcast', 'cancelled')).toBe(1);
    expect(count('users', 'expired')).toBe(1);
    expect(count('devices', 'failed')).toBe(1);
    expect(metric(m, 'herald_fanout_jobs_total')).toBe(5);

    expect(metric(m, 'herald_fanout_appends_total', { kind: 'inbox' })).toBe(3);
    expect(metric(m, 'herald_fanout_appends_total', { kind: 'topic' })).toBe(1);
    expect(metric(m, 'herald_fanout_appends_total', { kind: 'broadcast' })).toBe(0);
    expect(metric(m, 'herald_doorbells_total', { kind: 'inbox' })).toBe(2);
    expect(metric(m, 'herald_doorbells_total', { kind: 'stream' })).toBe(1);

    expect(metric(m, 'herald_fanout_job_duration_seconds_count', { target: 'devices' })).toBe(2);
    expect(metric(m, 'herald_fanout_job_duration_seconds_count', { target: 'topic' })).toBe(1);
    expect(metric(m, 'herald_fanout_job_duration_seconds_bucket', { target: 'topic', le: '+Inf' })).toBe(1);
    expect(metric(m, 'herald_fanout_job_duration_seconds_sum', { target: 'devices' })).toBeGreaterThan(0);

    // The failed job is left in the queue's failed set; nothing else waits.
    expect(metric(m, 'herald_queue_jobs', { state: 'failed' })).toBe(1);
    expect(metric(m, 'herald_queue_jobs', { state: 'waiting' })).toBe(0);
    expect(metric(m, 'herald_queue_jobs', { state: 'active' })).toBe(0);
  });

  it('shows delayed jobs in the queue gauge', async () => {
    const w = world(redis, PREFIX);
    const queue = queueOf(PREFIX);
    for (let i = 0; i < 2; i++) {
      const job = await notification(w, { devices: ['d1'] }, { state: 'scheduled', ttlMs: 3_600_000 });
      await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id, 600_000));
    }
    const m = await scrape(app.healthUrl);
    expect(metric(m, 'herald_queue_jobs', { state: 'delayed', app: 'worker' })).toBe(2);
  });

  it('has the default Node.js metrics, unprefixed, and app="worker" on every series', async () => {
    const m = await scrape(app.healthUrl);
    expect(metric(m, 'nodejs_eventloop_lag_seconds', { app: 'worker' })).toBeGreaterThanOrEqual(0);
    expect(metric(m, 'process_cpu_user_seconds_total', { app: 'worker' })).toBeGreaterThan(0);
    expect(metric(m, 'herald_redis_errors_total', { app: 'worker' })).toBe(0);
    expect(m.filter((s) => s.labels.app !== 'worker')).toEqual([]);
  });
});

describe('queue gauge', () => {
  it('counts waiting jobs (no worker on this queue)', async () => {
    const PREFIX = 'wgauge';
    const queue = queueOf(PREFIX);
    const w = world(redis, PREFIX);
    for (let i = 0; i < 3; i++) {
      const job = await notification(w, { devices: ['d1'] });
      await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id));
    }
    const job = await notification(w, { devices: ['d1'] });
    await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id, 60_000));
    const metrics = new WorkerMetrics({
      jobCounts: (...s) => queue.getJobCounts(...s),
      defaultMetrics: false,
    });
    const m = parseMetrics(await metrics.registry.metrics());
    expect(metric(m, 'herald_queue_jobs', { state: 'waiting' })).toBe(3);
    expect(metric(m, 'herald_queue_jobs', { state: 'delayed' })).toBe(1);
    expect(metric(m, 'herald_queue_jobs', { state: 'active' })).toBe(0);
    expect(metric(m, 'herald_queue_jobs', { state: 'failed' })).toBe(0);
  });

  it('gives no queue series, quickly, when the counts do not come back, and counts a Redis error', async () => {
    const metrics = new WorkerMetrics({
      jobCounts: () => new Promise(() => {}),
      jobCountsTimeoutMs: 100,
      defaultMetrics: false,
    });
    const health = createHealthServer({
      redis,
      worker: { isRunning: () => true },
      metrics: metrics.registry,
    });
    const started = Date.now();
    const res = await health.inject('/metrics');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(res.statusCode).toBe(200);
    const m = parseMetrics(res.body);
    expect(metric(m, 'herald_queue_jobs')).toBeUndefined();
    // Series are read together, so the error counted during this scrape shows in the next one.
    const next = parseMetrics((await health.inject('/metrics')).body);
    expect(metric(next, 'herald_redis_errors_total')).toBeGreaterThanOrEqual(1);
    await health.close();
  });

  it('counts a failed readiness PING as a Redis error', async () => {
    const metrics = new WorkerMetrics({ defaultMetrics: false });
    const dead = new Redis({ port: 1, host: '127.0.0.1', retryStrategy: () => 50 });
    dead.on('error', () => {});
    metrics.watch(dead);
    const health = createHealthServer({
      redis: dead,
      worker: { isRunning: () => true },
      metrics: metrics.registry,
      pingTimeoutMs: 100,
      onRedisError: () => metrics.redisErrors.inc(),
    });
    await until('a connection error', async () =>
      (metric(parseMetrics(await metrics.registry.metrics()), 'herald_redis_errors_total') ?? 0) > 0
        ? true
        : undefined,
    );
    expect((await health.inject('/readyz')).statusCode).toBe(503);
    await health.close();
    dead.disconnect();
  });
});
