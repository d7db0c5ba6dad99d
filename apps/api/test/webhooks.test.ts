import { type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, Keys, queueOptions, WEBHOOK_QUEUE, WebhookDeadLetters } from '@herald/store';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { auth, ready, testConfig } from './helpers.js';

// The webhook admin routes (docs/webhooks.md) against a real Redis: endpoints without secrets,
// dead letters paginated, replay of one and of all (as jobs on the worker's webhook queue).

const PREFIX = 'whtest';
const SECRET = `whsec_${Buffer.from('0123456789abcdef0123').toString('base64')}`;
const HOOKS = [
  { id: 'a', url: 'https://hooks.example/a', events: ['notification.delivered'], secret: SECRET },
  { id: 'b', url: 'http://127.0.0.1:9/b', events: ['device.online', 'notification.expired'], secret: SECRET },
];

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let app: HeraldApi;
let queue: Queue;

const letter = (i: number) => ({
  id: `msg_${i}`,
  endpoint: 'a',
  failedAt: 1_700_000_000_000 + i,
  attempts: 3,
  error: 'HTTP 500',
  events: [
    { id: `evt_${i}`, type: 'notification.delivered' as const, ts: 1_700_000_000_000, data: { n: i } },
  ],
});

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  redis = createRedis(srv.url, 'request');
  queueRedis = createRedis(srv.url, 'request');
  app = buildApp({
    config: testConfig(srv.url, PREFIX, { HERALD_WEBHOOKS: JSON.stringify(HOOKS) }),
    redis,
    queueRedis,
  });
  queue = new Queue(WEBHOOK_QUEUE, { connection: queueRedis, ...queueOptions(new Keys(PREFIX)) });
  await Promise.all([app.ready(), ready(redis), ready(queueRedis)]);
  const dead = new WebhookDeadLetters(redis, new Keys(PREFIX));
  for (let i = 0; i < 5; i++) await dead.add(letter(i), 4);
});
afterAll(async () => {
  await queue?.close();
  await app?.close();
  for (const c of [redis, queueRedis]) c?.disconnect();
  await srv?.stop();
});

describe('publishes by a key with endpoints', () => {
  it('record the key id in the status and the expiry, on the direct and the queued path', async () => {
    const keys = new Keys(PREFIX);
    const direct = await app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: auth(),
      payload: { to: { devices: ['d1'] }, data: {}, ttl: 60 },
    });
    const queued = await app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: auth(),
      payload: { to: { users: ['u1'] }, data: {}, ttl: 60 },
    });
    expect([direct.json().status, queued.json().status]).toEqual(['sent', 'queued']);
    for (const id of [direct.json().id, queued.json().id]) {
      expect(await redis.hget(keys.status(id), 'key')).toBe('env-1');
      const exp = Number(await redis.hget(keys.status(id), 'exp'));
      expect(Number(await redis.zscore(keys.webhookExpiries(), id))).toBe(exp);
    }
  });
});

describe('webhook admin routes', () => {
  it('lists the endpoints, never their secrets', async () => {
    const res = await app.inject({ url: '/v1/admin/webhooks', headers: auth() });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      endpoints: HOOKS.map(({ secret: _, ...h }) => ({ ...h, key: null })),
    });
    expect(res.body).not.toContain('whsec_');
  });

  it('pages through dead letters, newest first, bounded by the max', async () => {
    const res = await app.inject({
      url: '/v1/admin/webhooks/dead-letters?limit=2&offset=1',
      headers: auth(),
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    // 5 added with a max of 4: the oldest (msg_0) was dropped.
    expect(body.total).toBe(4);
    expect(body.deadLetters.map((d: { id: string }) => d.id)).toEqual(['msg_3', 'msg_2']);
    expect(body.deadLetters[0]).toMatchObject({
      endpoint: 'a',
      attempts: 3,
      error: 'HTTP 500',
      failedAt: new Date(1_700_000_000_003).toISOString(),
      events: [{ id: 'evt_3', type: 'notification.delivered', data: { n: 3 } }],
    });
  });

  it('refuses a bad page with the field named', async () => {
    const res = await app.inject({ url: '/v1/admin/webhooks/dead-letters?limit=500', headers: auth() });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('HERALD_BAD_REQUEST');
    expect(res.json().message).toContain('limit');
  });

  it('replays one dead letter as a job with the same webhook-id, then 404 for it', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks/dead-letters/msg_2/replay',
      headers: auth(),
    });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ replayed: 1, remaining: 3 });
    const jobs = await queue.getJobs(['wait']);
    expect(jobs.map((j) => j.data)).toEqual([
      { app: 'default', endpoint: 'a', msgId: 'msg_2', events: letter(2).events },
    ]);
    const again = await app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks/dead-letters/msg_2/replay',
      headers: auth(),
    });
    expect(again.statusCode).toBe(404);
    expect(again.json()).toEqual({ code: 'HERALD_NOT_FOUND', message: 'no dead letter msg_2' });
  });

  it('replays all of them', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/admin/webhooks/dead-letters/replay',
      headers: auth(),
    });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ replayed: 3, remaining: 0 });
    expect((await queue.getJobs(['wait'])).map((j) => j.data.msgId).sort()).toEqual([
      'msg_1',
      'msg_2',
      'msg_3',
      'msg_4',
    ]);
  });
});
