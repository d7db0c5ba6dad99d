import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthServer } from '../src/health.js';
import { startRedis, type TestRedis } from './helpers.js';

let server: TestRedis;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  await redis.ping();
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe('health', () => {
  it('is live and ready when Redis answers and the worker runs', async () => {
    const app = createHealthServer({ redis, worker: { isRunning: () => true } });
    const health = await app.inject('/healthz');
    expect([health.statusCode, health.json()]).toEqual([200, { status: 'ok', service: 'worker' }]);
    const ready = await app.inject('/readyz');
    expect([ready.statusCode, ready.json()]).toEqual([200, { status: 'ok', service: 'worker' }]);
    await app.close();
  });

  it('is not ready when the worker is not running', async () => {
    const app = createHealthServer({ redis, worker: { isRunning: () => false } });
    const r = await app.inject('/readyz');
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({
      status: 'unavailable',
      service: 'worker',
      code: 'HERALD_NOT_READY',
      message: 'fan-out worker is not running',
    });
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    await app.close();
  });

  it('is not ready, quickly, when Redis is away', async () => {
    // A port nobody listens on: the connection keeps retrying in the background.
    const dead = new Redis({ port: 1, host: '127.0.0.1', retryStrategy: () => 50, lazyConnect: false });
    dead.on('error', () => {});
    const app = createHealthServer({ redis: dead, worker: { isRunning: () => true } });
    const started = Date.now();
    const r = await app.inject('/readyz');
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({
      status: 'unavailable',
      service: 'worker',
      code: 'HERALD_NOT_READY',
      message: expect.stringMatching(/^redis/),
    });
    expect(Date.now() - started).toBeLessThan(1000);
    await app.close();
    dead.disconnect();
  });

  it('is not ready when a PING does not come back in time', async () => {
    const slow = new Redis(server.url);
    await slow.ping();
    // CLIENT PAUSE holds every client's commands: the PING waits, the probe must not.
    await redis.call('CLIENT', 'PAUSE', '300', 'ALL');
    const app = createHealthServer({ redis: slow, worker: { isRunning: () => true }, pingTimeoutMs: 100 });
    const r = await app.inject('/readyz');
    expect(r.statusCode).toBe(503);
    expect(r.json().message).toMatch(/^redis: no answer to PING within 100 ms$/);
    await app.close();
    slow.disconnect();
  });
});
