import { type RedisHandle, redisCli, startRedis, waitFor } from '@herald/stack';
import { createRedis, type RedisClient } from '@herald/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { auth, captureLogger, ready, testConfig } from './helpers.js';

/**
 * HERALD_REDIS_MIN_REPLICAS=1 through the API, on a master with one replica: a 202 only once the
 * replica holds the publish, 503 while it cannot confirm, and an Idempotency-Key retry is not
 * answered 202 for the held publish until the replica has it.
 */
describe('API with HERALD_REDIS_MIN_REPLICAS=1', () => {
  let master: RedisHandle;
  let replica: RedisHandle;
  let redis: RedisClient;
  let queueRedis: RedisClient;
  let app: HeraldApi;

  beforeAll(async () => {
    master = await startRedis();
    replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
    await waitFor(
      async () => (await redisCli(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
      { timeoutMs: 20_000, what: 'replica linked' },
    );
    redis = createRedis(master.url, 'request');
    queueRedis = createRedis(master.url, 'request');
    await Promise.all([ready(redis), ready(queueRedis)]);
    const config = testConfig(master.url, 'rp', {
      HERALD_REDIS_MIN_REPLICAS: '1',
      HERALD_REDIS_REPLICA_TIMEOUT_MS: '200',
    });
    app = buildApp({ config, redis, queueRedis, loggerInstance: captureLogger().logger });
    await app.ready();
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    redis?.disconnect();
    queueRedis?.disconnect();
    await replica?.stop();
    await master?.stop();
  });

  const publish = (body: unknown, key?: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: { ...auth(), ...(key ? { 'idempotency-key': key } : {}) },
      payload: body as object,
    });

  it('answers 202 once the replica holds it (direct and queued)', async () => {
    for (const to of [{ devices: ['a'] }, { users: ['u'] }]) {
      const res = await publish({ to, data: 1 });
      expect(res.statusCode).toBe(202);
      const id = res.json().id as string;
      expect(await redisCli(replica.port, 'HGET', `rp:{n:${id}}:status`, 'state')).toMatch(/sent|queued/);
    }
  });

  it('answers 503 while the replica cannot confirm, and a retry with the same key only once it can', async () => {
    process.kill(replica.pid, 'SIGSTOP');
    let held: string | undefined;
    try {
      const first = await publish({ to: { devices: ['b'] }, data: 2 }, 'rp-key-1');
      expect(first.statusCode).toBe(503);
      expect(first.json().code).toBe('HERALD_REDIS_UNAVAILABLE');
      // The publish is on the master (the 503 says it may have happened), not confirmed.
      const retry = await publish({ to: { devices: ['b'] }, data: 2 }, 'rp-key-1');
      expect(retry.statusCode).toBe(503);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }
    await waitFor(
      async () => {
        const r = await publish({ to: { devices: ['b'] }, data: 2 }, 'rp-key-1');
        if (r.statusCode === 202) held = r.json().id as string;
        return r.statusCode === 202;
      },
      { timeoutMs: 10_000, what: 'the retry to be answered 202' },
    );
    expect(held).toBeDefined();
    expect(await redisCli(replica.port, 'HGET', `rp:{n:${held}}:status`, 'state')).toBe('sent');
  });
});
