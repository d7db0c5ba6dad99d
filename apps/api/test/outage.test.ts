import { once } from 'node:events';
import { freePort, metric, parseMetrics, type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, Keys } from '@herald/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { apiKeyId } from '../src/auth.js';
import { auth, captureLogger, KEY, ready, testConfig } from './helpers.js';

const PREFIX = 'outage';
const body = { to: { devices: ['d1'] }, data: { n: 1 } };

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let app: HeraldApi;
const logs = captureLogger();

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  redis = createRedis(srv.url, 'request');
  queueRedis = createRedis(srv.url, 'request');
  app = buildApp({ config: testConfig(srv.url, PREFIX), redis, queueRedis, loggerInstance: logs.logger });
  await Promise.all([app.ready(), ready(redis), ready(queueRedis)]);
});

afterAll(async () => {
  await app?.close();
  redis?.disconnect();
  queueRedis?.disconnect();
  await srv?.stop();
});

const publish = (headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/v1/notifications', headers: { ...auth(), ...headers }, payload: body });

/** Runs `fn` and returns its result with how long it took. */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = Date.now();
  const r = await fn();
  return [r, Date.now() - t0];
}

describe('Redis outage', () => {
  it('answers 503 at once while Redis is down, and works again once it is back', async () => {
    expect((await publish()).statusCode).toBe(202);

    const closed = [redis, queueRedis].map((r) => once(r, 'close', { signal: AbortSignal.timeout(10_000) }));
    await srv.stop();
    await Promise.all(closed);

    const cases: Record<string, string>[] = [{}, { 'idempotency-key': 'during-outage' }];
    for (const headers of cases) {
      const [res, ms] = await timed(() => publish(headers));
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({
        code: 'HERALD_REDIS_UNAVAILABLE',
        message: 'Redis is unavailable; retry later',
      });
      expect(res.headers['retry-after']).toBe('1');
      expect(ms).toBeLessThan(1000);
    }
    const [readyz, ms] = await timed(() => app.inject({ url: '/readyz' }));
    expect(readyz.statusCode).toBe(503);
    expect(readyz.json()).toEqual({
      status: 'unavailable',
      service: 'api',
      code: 'HERALD_NOT_READY',
      message: expect.stringMatching(/^Redis does not answer: /),
    });
    expect(ms).toBeLessThan(1500);
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    const status = await app.inject({
      url: '/v1/notifications/0190a0b0-0000-7000-8000-000000000000',
      headers: auth(),
    });
    expect(status.statusCode).toBe(503);
    const topic = await app.inject({ method: 'PUT', url: '/v1/topics/news/devices/d1', headers: auth() });
    expect(topic.statusCode).toBe(503);

    // Metrics still answer (they need no Redis) and show the outage: connection 'error' events
    // and the failed commands behind the 503s, and the publishes refused with their code.
    const metrics = await app.inject({ url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    const m = parseMetrics(metrics.body);
    // Two publishes, /readyz, the status read, the topic PUT: at least one error each.
    expect(metric(m, 'herald_redis_errors_total', { app: 'api' })).toBeGreaterThanOrEqual(5);
    expect(metric(m, 'herald_publish_rejected_total', { code: 'HERALD_REDIS_UNAVAILABLE' })).toBe(2);
    expect(
      metric(m, 'herald_http_requests_total', { route: '/v1/notifications', method: 'POST', status: '503' }),
    ).toBe(2);

    await srv.restart();
    await Promise.all([ready(redis), ready(queueRedis)]);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    const res = await publish({ 'idempotency-key': 'during-outage' });
    expect(res.statusCode).toBe(202);
    expect(res.json().status).toBe('sent');

    // 5xx are logged, with the cause, but never with the API key.
    const all = logs.lines.join('');
    expect(all).toContain('HERALD_REDIS_UNAVAILABLE');
    expect(all).not.toContain(KEY);
  });

  it('bounds the queue add when only the queue connection is stuck, and keeps the key for a safe retry', async () => {
    // A queue connection to a port nobody listens on: BullMQ waits for it to connect, forever.
    const dead = createRedis(`redis://127.0.0.1:${await freePort()}`, 'request');
    dead.on('error', () => {});
    const stuck = buildApp({
      // Queue every publish: a direct one would not touch the stuck connection.
      config: testConfig(srv.url, PREFIX, { HERALD_DIRECT_PUBLISH: 'false' }),
      redis,
      queueRedis: dead,
      loggerInstance: captureLogger().logger,
      queueTimeoutMs: 300,
    });
    try {
      await stuck.ready();
      const [res, ms] = await timed(() =>
        stuck.inject({
          method: 'POST',
          url: '/v1/notifications',
          headers: { ...auth(), 'idempotency-key': 'stuck-queue' },
          payload: body,
        }),
      );
      expect(res.statusCode).toBe(503);
      expect(res.json().code).toBe('HERALD_REDIS_UNAVAILABLE');
      expect(ms).toBeLessThan(2000);
      // A timed-out write may still happen later, so the key stays with the first request's id.
      const idemKey = new Keys(PREFIX).idempotency(apiKeyId(KEY), 'stuck-queue');
      const heldId = await redis.hget(idemKey, 'id');
      expect(heldId).toBeTruthy();
      // A retry on a working app: 409 in progress (Retry-After: 1) while the first request may
      // still be running, then, once it is certainly gone, the publish is finished under its id.
      const deadline = Date.now() + 10_000;
      let retry = await publish({ 'idempotency-key': 'stuck-queue' });
      let inProgress = 0;
      while (retry.statusCode === 409 && Date.now() < deadline) {
        expect(retry.json().code).toBe('HERALD_IDEMPOTENCY_IN_PROGRESS');
        expect(retry.headers['retry-after']).toBe('1');
        inProgress++;
        await new Promise((r) => setTimeout(r, 250));
        retry = await publish({ 'idempotency-key': 'stuck-queue' });
      }
      expect(retry.statusCode).toBe(202);
      expect(retry.json().id).toBe(heldId);
      expect(inProgress).toBeGreaterThan(0);
    } finally {
      await stuck.close();
      dead.disconnect();
    }
  });
});

describe('batch publish with the queue connection stuck', () => {
  it('answers 207: direct items accepted, queued ones HERALD_REDIS_UNAVAILABLE; 503 when all fail', async () => {
    const dead = createRedis(`redis://127.0.0.1:${await freePort()}`, 'request');
    dead.on('error', () => {});
    const stuck = buildApp({
      config: testConfig(srv.url, PREFIX),
      redis,
      queueRedis: dead,
      loggerInstance: captureLogger().logger,
      queueTimeoutMs: 300,
    });
    const batch = (notifications: unknown[]) =>
      stuck.inject({
        method: 'POST',
        url: '/v1/notifications/batch',
        headers: auth(),
        payload: { notifications } as object,
      });
    try {
      await stuck.ready();
      const device = `dev-batch-${Date.now()}`;
      const res = await batch([
        { to: { devices: [device] }, data: 1 },
        { to: { users: ['u1'] }, data: 2 },
        { to: { devices: [device] }, data: 3 },
      ]);
      expect(res.statusCode).toBe(207);
      const { results } = res.json() as { results: Record<string, string>[] };
      expect(results[0]).toMatchObject({ status: 'sent' });
      expect(results[1]).toEqual({
        code: 'HERALD_REDIS_UNAVAILABLE',
        message: 'Redis is unavailable; retry later',
      });
      expect(results[2]).toMatchObject({ status: 'sent' });
      // The accepted ones are in the device's inbox, in order; the failed one is nowhere.
      const inbox = await redis.xrange(new Keys(PREFIX).inbox(device).stream, '-', '+');
      expect(inbox.map(([, f]) => f[f.indexOf('i') + 1])).toEqual([results[0]?.id, results[2]?.id]);

      const all = await batch([{ to: { users: ['u1'] }, data: 4 }]);
      expect(all.statusCode).toBe(503);
      expect(all.json().code).toBe('HERALD_REDIS_UNAVAILABLE');
    } finally {
      await stuck.close();
      dead.disconnect();
    }
  });
});
