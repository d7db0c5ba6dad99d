import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type AppHandle, type RedisHandle, startApi, startNode, startRedis } from '@herald/stack';
import { mintDeviceToken } from '@herald/token';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AppDevice } from '../support/devices.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { API_KEY, TOKEN_SECRET } from '../support/system.js';

/**
 * Found by the fault campaign (seeds 31415 and 9001): a publish answered 503 while Redis was slow,
 * retried with the same Idempotency-Key as docs/api.md says, reached the device under two ids.
 * The first request's append was only late, not refused: its step bound (queueTimeoutMs) expired,
 * so the API gave the key back (Idempotency.release), but Redis ran the append anyway and then
 * the release, after which a retry claimed the key afresh and published again under a new id.
 * docs/api.md promises the opposite ("the retry then answers that notification's id instead of
 * publishing it twice").
 *
 * Here, deterministically: the API reaches Redis through a FaultProxy; a device is on a node that
 * reaches Redis directly. Scripts flushed (as after a Redis restart), 250 ms each way, publish
 * (503), heal, retry with the same key until 202: the device must see that notification once,
 * under the id of the 202. Fails today: it sees the 503's id and then the 202's.
 */
let dir: string;
let redis: RedisHandle | undefined;
let proxy: FaultProxy | undefined;
let api: AppHandle | undefined;
let node: AppHandle | undefined;
let device: AppDevice | undefined;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-idem-'));
  const logDir = path.join(dir, 'logs');
  redis = await startRedis({ dir: path.join(dir, 'redis'), logFile: path.join(logDir, 'redis.log') });
  proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: redis.port }, name: 'redis<-api' });
  const common = { logDir, logLevel: 'warn', env: { HERALD_FLUSH_MS: '50' } };
  [api, node] = await Promise.all([
    startApi({ ...common, redisUrl: proxy.url('redis'), apiKeys: [API_KEY] }),
    startNode({ ...common, redisUrl: redis.url, nodeId: 'node-1', tokenSecret: TOKEN_SECRET }),
  ]);
}, 60_000);

afterAll(async () => {
  await device?.client.close().catch(() => {});
  await Promise.allSettled([api?.stop(), node?.stop()]);
  await proxy?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

async function publish(key: string): Promise<{ status: number; body: { id?: string; code?: string } }> {
  const res = await fetch(`${api!.url}/v1/notifications`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${API_KEY}`,
      'content-type': 'application/json',
      'idempotency-key': key,
    },
    body: JSON.stringify({ to: { devices: ['idem-dev'] }, data: { k: key } }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as { id?: string; code?: string } };
}

it('a publish answered 503 while Redis is slow, retried with its key, reaches the device once, under one id', async () => {
  device = new AppDevice(
    'idem-dev',
    `ws://127.0.0.1:${node!.port}/v1/ws`,
    () => mintDeviceToken({ secret: TOKEN_SECRET, device: 'idem-dev', user: 'idem-user' }),
    '127.0.0.1',
  );
  await device.client.connect();

  // One publish first, so the API's Lua scripts are loaded; then Redis forgets them, as after a
  // restart (the campaign had restarted Redis), so each script's next call costs two round trips
  // (EVALSHA: NOSCRIPT, then EVAL).
  expect((await publish('idem-warm-up')).status).toBe(202);
  const admin = new Redis(redis!.url);
  await admin.script('FLUSH');
  await admin.quit();
  // 250 ms each way (the campaign's redis-latency fault): the claim runs in Redis at 0.75 s and is
  // answered at 1 s, when the request's deadline answers 503; the append then runs at 2.25 s,
  // after its 1 s step bound (2 s) made the API give the key back; the release runs after it.
  proxy!.latency(250);
  const first = await publish('idem-partition-1');
  expect(first.status).toBe(503);
  await new Promise((r) => setTimeout(r, 3000));
  proxy!.heal();

  // Retry as docs/api.md says: 503 and 409 in progress with the same key, bounded.
  let accepted: string | undefined;
  const deadline = Date.now() + 20_000;
  while (!accepted) {
    if (Date.now() > deadline) throw new Error('no 202 within 20 s of the heal');
    const r = await publish('idem-partition-1');
    if (r.status === 202) accepted = r.body.id;
    else {
      expect([503, 409]).toContain(r.status);
      await new Promise((res) => setTimeout(res, 200));
    }
  }
  // Both would be on the device's inbox in append order: the first request's (delayed) append
  // comes before the retry's, so once the 202's id is seen, any other id is already there.
  await device.until(() => device!.ids().includes(accepted!), 'the accepted id', 15_000);
  const mine = device.seen
    .filter((n) => (n.data as { k?: string }).k === 'idem-partition-1')
    .map((n) => n.id);
  expect(mine, 'one notification, under the id of the 202').toEqual([accepted]);
}, 60_000);
