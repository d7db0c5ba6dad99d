import { randomUUID } from 'node:crypto';
import type { FanoutJob } from '@herald/protocol';
import { type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, Devices, decodeDoorbell, Idempotency, Keys } from '@herald/store';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { apiKeyId } from '../src/auth.js';
import { notificationId } from '../src/ids.js';
import { bodyHash } from '../src/notifications.js';
import { auth, captureLogger, inspectQueue, KEY, KEY2, ready, testConfig } from './helpers.js';

const PREFIX = 'apitest';
const keys = new Keys(PREFIX);

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let plain: Redis;
let sub: Redis;
let queue: Queue;
let app: HeraldApi;
const logs = captureLogger();

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  redis = createRedis(srv.url, 'request');
  queueRedis = createRedis(srv.url, 'request');
  plain = createRedis(srv.url, 'background');
  sub = createRedis(srv.url, 'subscriber');
  queue = inspectQueue(plain, PREFIX);
  // The queued path: the direct one (the default) has its own app in 'direct publish' below.
  app = buildApp({ config: queuedConfig(), redis, queueRedis, loggerInstance: logs.logger });
  // 'request' connections have no offline queue: a command before they connect fails at once.
  await Promise.all([app.ready(), ready(redis), ready(queueRedis)]);
});

afterAll(async () => {
  await app?.close();
  await queue?.close();
  for (const c of [redis, queueRedis, plain, sub]) c?.disconnect();
  await srv?.stop();
});

const publish = (payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: '/v1/notifications',
    headers: { ...auth(), ...headers },
    payload: payload as object,
  });

/** Another app on the same Redis and connections, with some settings changed (default path: direct). */
async function appWith(env: Record<string, string>): Promise<HeraldApi> {
  const a = buildApp({
    config: testConfig(srv.url, PREFIX, env),
    redis,
    queueRedis,
    loggerInstance: captureLogger().logger,
  });
  await a.ready();
  return a;
}

const queuedConfig = () => testConfig(srv.url, PREFIX, { HERALD_DIRECT_PUBLISH: 'false' });

const soon = (ms: number) => new Date(Date.now() + ms).toISOString();

async function jobOf(id: string) {
  const job = await queue.getJob(id);
  return job as (typeof job & { data: FanoutJob }) | undefined;
}

describe('auth', () => {
  it('answers 401 with WWW-Authenticate for a missing, malformed or unknown key', async () => {
    const cases: Record<string, string>[] = [
      {},
      { authorization: `Basic ${KEY}` },
      { authorization: 'Bearer wrong-key-0123456789abcdef' },
      { authorization: `Bearer ${KEY}x` },
    ];
    for (const headers of cases) {
      const res = await app.inject({ method: 'POST', url: '/v1/notifications', headers, payload: {} });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'HERALD_UNAUTHORIZED' });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    const get = await app.inject({ method: 'GET', url: `/v1/notifications/${randomUUID()}` });
    expect(get.statusCode).toBe(401);
    const put = await app.inject({ method: 'PUT', url: '/v1/topics/news/devices/d1' });
    expect(put.statusCode).toBe(401);
  });

  it('accepts every configured key, and checks the key before reading the body', async () => {
    const res = await publish({ to: { broadcast: true }, data: 1 }, auth(KEY2));
    expect(res.statusCode).toBe(202);
    const big = await app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: { 'content-type': 'application/json' },
      payload: 'x'.repeat(10_000),
    });
    expect(big.statusCode).toBe(401);
  });
});

describe('health and unknown routes', () => {
  it('serves healthz and readyz without auth, and 404s unknown routes with a code', async () => {
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok', service: 'api' });
    const ready = await app.inject({ url: '/readyz' });
    expect([ready.statusCode, ready.json()]).toEqual([200, { status: 'ok', service: 'api' }]);
    const missing = await app.inject({ url: '/v2/nothing', headers: auth() });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'HERALD_NOT_FOUND' });
  });
});

describe('publish validation', () => {
  const ok = { to: { devices: ['d1'] }, data: { a: 1 } };
  const cases: [string, unknown, RegExp][] = [
    ['missing to', { data: 1 }, /missing to/],
    ['missing data', { to: { devices: ['d1'] } }, /missing data/],
    ['empty to', { to: {}, data: 1 }, /exactly one of/],
    ['two targets', { to: { devices: ['d1'], users: ['u1'] }, data: 1 }, /exactly one of/],
    ['unknown target', { to: { device: ['d1'] }, data: 1 }, /unknown property to\.device/],
    ['devices not an array', { to: { devices: 'd1' }, data: 1 }, /to\.devices must be array/],
    ['no devices', { to: { devices: [] }, data: 1 }, /to\.devices must NOT have fewer than 1/],
    [
      'bad device id',
      { to: { devices: ['ok', 'no spaces'] }, data: 1 },
      /to\.devices\[1\] is not a valid id/,
    ],
    ['long user id', { to: { users: ['u'.repeat(129)] }, data: 1 }, /to\.users\[0\] is not a valid id/],
    ['bad topic', { to: { topic: 'a..b' }, data: 1 }, /to\.topic is not a valid topic/],
    ['long topic', { to: { topic: 't'.repeat(129) }, data: 1 }, /to\.topic is not a valid topic/],
    ['topic not a string', { to: { topic: 5 }, data: 1 }, /to\.topic must be string/],
    ['broadcast false', { to: { broadcast: false }, data: 1 }, /to\.broadcast must be true/],
    ['ttl 0', { ...ok, ttl: 0 }, /ttl must be >= 1/],
    ['ttl above max', { ...ok, ttl: 3601 }, /ttl must be <= 3600/],
    ['ttl as a string', { ...ok, ttl: '60' }, /ttl must be integer/],
    ['ttl fractional', { ...ok, ttl: 1.5 }, /ttl must be integer/],
    ['deliverAt not a date', { ...ok, deliverAt: 'tomorrow' }, /deliverAt must be an ISO 8601 date-time/],
    ['deliverAt without zone', { ...ok, deliverAt: '2030-01-01T00:00:00' }, /deliverAt must be an ISO 8601/],
    ['deliverAt too far', { ...ok, deliverAt: soon(90_000_000) }, /deliverAt is more than 86400 s ahead/],
    ['unknown property', { ...ok, urgency: 'high' }, /unknown property urgency/],
    ['bad priority', { ...ok, priority: 'urgent' }, /^priority must be one of high, normal, low$/],
    ['collapseKey too long', { ...ok, collapseKey: 'k'.repeat(65) }, /^collapseKey must be 1 to 64 of/],
    ['collapseKey bad chars', { ...ok, collapseKey: 'a/b' }, /^collapseKey must be 1 to 64 of/],
    ['array body', [ok], /body must be object/],
  ];
  for (const [name, body, message] of cases) {
    it(`400 for ${name}`, async () => {
      const res = await publish(body);
      expect(res.statusCode, res.body).toBe(400);
      const json = res.json();
      expect(json.code).toBe('HERALD_BAD_REQUEST');
      expect(json.message).toMatch(message);
      expect(Object.keys(json).sort()).toEqual(['code', 'message']);
    });
  }

  it('400 for malformed JSON, an empty body and a bad Idempotency-Key; 415 for non-JSON', async () => {
    const json = { ...auth(), 'content-type': 'application/json' };
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: json,
      payload: '{"to":',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ code: 'HERALD_BAD_REQUEST', message: 'body is not valid JSON' });
    const empty = await app.inject({ method: 'POST', url: '/v1/notifications', headers: json, payload: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json()).toEqual({ code: 'HERALD_BAD_REQUEST', message: 'body must be object' });
    // ...but a bodiless PUT or DELETE may still carry the JSON content type.
    const put = await app.inject({ method: 'PUT', url: '/v1/topics/t/devices/d-json', headers: json });
    expect(put.statusCode).toBe(204);
    const proto = await app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: json,
      payload: '{"to":{"broadcast":true},"data":{"__proto__":{"x":1}}}',
    });
    expect(proto.statusCode).toBe(400);
    const longKey = await publish(ok, { 'idempotency-key': 'k'.repeat(201) });
    expect(longKey.statusCode).toBe(400);
    expect(longKey.json().message).toMatch(/Idempotency-Key header must be 1 to 200 printable/);
    const text = await app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: { ...auth(), 'content-type': 'text/plain' },
      payload: JSON.stringify(ok),
    });
    expect(text.statusCode).toBe(415);
    expect(text.json().code).toBe('HERALD_UNSUPPORTED_MEDIA_TYPE');
  });

  it('413 when data is over HERALD_MAX_DATA_BYTES or the body over HERALD_MAX_BODY_BYTES', async () => {
    // 'é' is 2 bytes: the limit is on UTF-8 bytes of the JSON text, not characters.
    const data = await publish({ to: { devices: ['d1'] }, data: 'é'.repeat(128) });
    expect(data.statusCode).toBe(413);
    expect(data.json()).toEqual({
      code: 'HERALD_DATA_TOO_LARGE',
      message: 'data is 258 bytes as JSON, more than the 256 allowed',
    });
    const fits = await publish({ to: { devices: ['d1'] }, data: 'x'.repeat(254) });
    expect(fits.statusCode).toBe(202);
    const body = await publish({ to: { devices: ['d1'] }, data: 'x'.repeat(3000) });
    expect(body.statusCode).toBe(413);
    expect(body.json()).toEqual({
      code: 'HERALD_PAYLOAD_TOO_LARGE',
      message: 'request body is larger than 2048 bytes',
    });
  });
});

describe('publish (HERALD_DIRECT_PUBLISH=false)', () => {
  it('queues a device publish: 202, one fan-out job with the data as JSON text, status queued', async () => {
    const before = Date.now();
    const res = await publish({
      to: { devices: ['d1', 'd2', 'd1'] },
      data: { title: 'hi', n: [1, 2] },
      ttl: 30,
    });
    expect(res.statusCode).toBe(202);
    const { id, status } = res.json();
    expect(status).toBe('queued');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    const job = await jobOf(id);
    expect(job?.name).toBe('fanout');
    // Normal priority: BullMQ priority 1 (only high is unprioritized, packages/store queue.ts).
    expect(await job?.getState()).toBe('prioritized');
    const data = job?.data as FanoutJob;
    expect(data.id).toBe(id);
    expect(data.to).toEqual({ devices: ['d1', 'd2'] });
    expect(data.data).toBe('{"title":"hi","n":[1,2]}');
    expect(data.ts).toBeGreaterThanOrEqual(before);
    expect(data.exp - data.ts).toBe(30_000);

    const get = await app.inject({ url: `/v1/notifications/${id}`, headers: auth() });
    expect(get.statusCode).toBe(200);
    expect(get.json()).toEqual({
      id,
      state: 'queued',
      target: 'devices',
      createdAt: new Date(data.ts).toISOString(),
      expiresAt: new Date(data.exp).toISOString(),
      counts: { targets: 0, delivered: 0, acked: 0, expired: 0, pushed: 0, pushFailed: 0 },
    });
  });

  it('accepts every target form, the default TTL, null data, and a past deliverAt as "now"', async () => {
    const cases: [unknown, string][] = [
      [{ users: ['u1', 'u@example.com'] }, 'users'],
      [{ topic: 'news.sport' }, 'topic'],
      [{ broadcast: true }, 'broadcast'],
    ];
    for (const [to, target] of cases) {
      const res = await publish({ to, data: null, deliverAt: new Date(Date.now() - 5000).toISOString() });
      expect(res.statusCode).toBe(202);
      const { id, status } = res.json();
      expect(status).toBe('queued');
      const job = await jobOf(id);
      expect(job?.data.to).toEqual(to);
      expect(job?.data.data).toBe('null');
      expect(job?.data.exp - (job?.data.ts ?? 0)).toBe(60_000);
      expect(job?.opts.delay ?? 0).toBe(0);
      const s = (await app.inject({ url: `/v1/notifications/${id}`, headers: auth() })).json();
      expect(s).toMatchObject({ state: 'queued', target });
      expect(s.deliverAt).toBeUndefined();
    }
  });

  it('answers 404 for an unknown id and 400 for a malformed one', async () => {
    const res = await app.inject({ url: `/v1/notifications/${randomUUID()}`, headers: auth() });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('HERALD_NOT_FOUND');
    const bad = await app.inject({ url: '/v1/notifications/a%7Bb%7D', headers: auth() });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('HERALD_BAD_REQUEST');
  });
});

describe('schedule and cancel', () => {
  it('schedules a delayed job; DELETE cancels it and removes the job, and is idempotent', async () => {
    const at = Date.now() + 60_000;
    const res = await publish({
      to: { topic: 'later' },
      data: 'x',
      ttl: 10,
      deliverAt: new Date(at).toISOString(),
    });
    expect(res.statusCode).toBe(202);
    const { id, status } = res.json();
    expect(status).toBe('scheduled');
    const job = await jobOf(id);
    expect(await job?.getState()).toBe('delayed');
    expect(job?.data.exp).toBe(at + 10_000);
    const s = (await app.inject({ url: `/v1/notifications/${id}`, headers: auth() })).json();
    expect(s).toMatchObject({ state: 'scheduled', deliverAt: new Date(at).toISOString() });

    const del = await app.inject({ method: 'DELETE', url: `/v1/notifications/${id}`, headers: auth() });
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ id, state: 'cancelled' });
    expect(await queue.getJob(id)).toBeUndefined();
    const after = (await app.inject({ url: `/v1/notifications/${id}`, headers: auth() })).json();
    expect(after.state).toBe('cancelled');

    const again = await app.inject({ method: 'DELETE', url: `/v1/notifications/${id}`, headers: auth() });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ id, state: 'cancelled' });
  });

  it('409 HERALD_ALREADY_SENT for a notification that is not scheduled, 404 for an unknown one', async () => {
    const { id } = (await publish({ to: { devices: ['d9'] }, data: 1 })).json();
    const del = await app.inject({ method: 'DELETE', url: `/v1/notifications/${id}`, headers: auth() });
    expect(del.statusCode).toBe(409);
    expect(del.json()).toEqual({
      code: 'HERALD_ALREADY_SENT',
      message: `notification ${id} cannot be cancelled: it is queued`,
    });
    expect(await queue.getJob(id)).toBeDefined();
    const unknown = await app.inject({
      method: 'DELETE',
      url: `/v1/notifications/${randomUUID()}`,
      headers: auth(),
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('HERALD_NOT_FOUND');
  });
});

describe('idempotency', () => {
  it('three concurrent publishes with one key and body give one id and one job', async () => {
    const body = { to: { users: ['u-idem'] }, data: { k: 1 } };
    const countBefore = await queue.count();
    const key = `idem-${randomUUID()}`;
    const results = await Promise.all([1, 2, 3].map(() => publish(body, { 'idempotency-key': key })));
    for (const r of results) expect(r.statusCode, r.body).toBe(202);
    const ids = new Set(results.map((r) => r.json().id));
    expect(ids.size).toBe(1);
    const [id] = [...ids] as [string];
    expect(results.map((r) => r.json().status)).toEqual(['queued', 'queued', 'queued']);
    expect(await queue.count()).toBe(countBefore + 1);
    expect((await jobOf(id))?.data.to).toEqual({ users: ['u-idem'] });

    // Later retries still get the same id; a different body under the key is a conflict.
    const retry = await publish(body, { 'idempotency-key': key });
    expect(retry.json()).toEqual({ id, status: 'queued' });
    const other = await publish({ ...body, data: { k: 2 } }, { 'idempotency-key': key });
    expect(other.statusCode).toBe(409);
    expect(other.json().code).toBe('HERALD_IDEMPOTENCY_CONFLICT');
    expect(await queue.count()).toBe(countBefore + 1);

    // Keys are per API key: another publisher may use the same Idempotency-Key.
    const theirs = await publish(body, { ...auth(KEY2), 'idempotency-key': key });
    expect(theirs.statusCode).toBe(202);
    expect(theirs.json().id).not.toBe(id);
  });

  it('finishes, under the held id, a publish whose first request claimed the key and died', async () => {
    const quick = buildApp({
      config: testConfig(srv.url, PREFIX, { HERALD_DIRECT_PUBLISH: 'false' }),
      redis,
      queueRedis,
      loggerInstance: captureLogger().logger,
      queueTimeoutMs: 100,
    });
    const post = (key: string, body: unknown) =>
      quick.inject({
        method: 'POST',
        url: '/v1/notifications',
        headers: { ...auth(), 'idempotency-key': key },
        payload: body as object,
      });
    try {
      const body = { to: { topic: 'orphan' }, data: 3 };
      // What a request leaves behind when it dies right after claiming: a claim, no status, no
      // job. Its id says it claimed 5 s ago, longer than any live holder takes: finished here.
      const key = `idem-${randomUUID()}`;
      const heldId = notificationId(Date.now() - 5000);
      await new Idempotency(plain, keys, 60_000).claim(apiKeyId(KEY), key, heldId, bodyHash(body));
      const res = await post(key, body);
      expect(res.statusCode).toBe(202);
      expect(res.json()).toEqual({ id: heldId, status: 'queued' });
      expect((await jobOf(heldId))?.data.to).toEqual({ topic: 'orphan' });

      // A holder that claimed just now may still be accepting: 409 in progress, retry later.
      const key2 = `idem-${randomUUID()}`;
      const young = notificationId();
      await new Idempotency(plain, keys, 60_000).claim(apiKeyId(KEY), key2, young, bodyHash(body));
      const busy = await post(key2, body);
      expect(busy.statusCode).toBe(409);
      expect(busy.json().code).toBe('HERALD_IDEMPOTENCY_IN_PROGRESS');
      expect(busy.headers['retry-after']).toBe('1');
      expect(await jobOf(young)).toBeFalsy();
      // Once the holder is certainly gone (claim + 3 x 100 ms + 1 s), the retry finishes it.
      const deadline = Date.now() + 5000;
      let retry = await post(key2, body);
      while (retry.statusCode === 409 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        retry = await post(key2, body);
      }
      expect(retry.statusCode).toBe(202);
      expect(retry.json()).toEqual({ id: young, status: 'queued' });
    } finally {
      await quick.close();
    }
  });

  it('a replay reports the current state (cancelled after a cancel)', async () => {
    const body = { to: { devices: ['d1'] }, data: 2, deliverAt: soon(60_000) };
    const key = `idem-${randomUUID()}`;
    const first = (await publish(body, { 'idempotency-key': key })).json();
    expect(first.status).toBe('scheduled');
    await app.inject({ method: 'DELETE', url: `/v1/notifications/${first.id}`, headers: auth() });
    const replay = await publish(body, { 'idempotency-key': key });
    expect(replay.statusCode).toBe(202);
    expect(replay.json()).toEqual({ id: first.id, status: 'cancelled' });
  });
});

describe('direct publish (the default)', () => {
  let direct: HeraldApi;
  beforeAll(async () => {
    direct = await appWith({ HERALD_DIRECT_MAX_DEVICES: '3' });
  });
  afterAll(() => direct?.close());

  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    direct.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: { ...auth(), ...headers },
      payload: payload as object,
    });
  const statusOf = async (id: string) =>
    (await direct.inject({ url: `/v1/notifications/${id}`, headers: auth() })).json();
  const inbox = async (device: string) =>
    (await plain.xrange(keys.inbox(device).stream, '-', '+')).map(([seq, f]) => ({
      seq,
      id: f[f.indexOf('i') + 1],
      data: f[f.indexOf('d') + 1],
    }));

  /** Collects doorbells on one channel until `n` arrived (bounded). */
  async function bells(channel: string, n: number, act: () => Promise<void>) {
    const got: string[] = [];
    const conn = createRedis(srv.url, 'subscriber');
    try {
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${got.length} of ${n} doorbells after 2 s`)), 2000);
        conn.on('message', (ch: string, msg: string) => {
          if (ch !== channel) return;
          got.push(msg);
          if (got.length === n) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      await conn.subscribe(channel);
      await act();
      await done;
      return got.map(decodeDoorbell);
    } finally {
      conn.disconnect();
    }
  }

  it('appends a device publish before answering: 202 sent, state sent, inbox entries, one doorbell per node, no job', async () => {
    const [a, b] = [`dev-${randomUUID()}`, `dev-${randomUUID()}`];
    // Live on node-direct, as a push node's hello leaves it (Devices.connect).
    await new Devices(plain, keys, 60_000).connect([{ device: a, user: `u-${a}` }], 'node-direct', 60_000);
    let id = '';
    const rung = await bells(keys.nodeChannel('node-direct'), 1, async () => {
      const res = await post({ to: { devices: [a, b, a] }, data: { title: 'now' }, ttl: 30 });
      expect(res.statusCode).toBe(202);
      expect(res.json().status).toBe('sent');
      id = res.json().id;
    });
    // In Redis before the 202: both inboxes hold it at seq 1, nothing was queued.
    expect(await inbox(a)).toEqual([{ seq: '1-0', id, data: '{"title":"now"}' }]);
    expect(await inbox(b)).toEqual([{ seq: '1-0', id, data: '{"title":"now"}' }]);
    expect(await queue.getJob(id)).toBeUndefined();
    expect(rung).toEqual([
      { k: 'inbox', entry: expect.objectContaining({ id, data: '{"title":"now"}' }), to: [[a, 1]] },
    ]);
    expect(await statusOf(id)).toMatchObject({
      state: 'sent',
      target: 'devices',
      counts: { targets: 2, delivered: 0, acked: 0, expired: 0, pushed: 0, pushFailed: 0 },
    });
  });

  it('appends a topic or broadcast publish and rings its channel once; targets are its audience', async () => {
    const topic = `direct.${randomUUID().slice(0, 8)}`;
    for (const d of ['m1', 'm2', 'm3']) await new Devices(plain, keys, 60_000).subscribe(d, topic);
    const [topicBell] = await bells(keys.topicChannel(topic), 1, async () => {
      const res = await post({ to: { topic }, data: 'x' });
      expect(res.json().status).toBe('sent');
      expect(await statusOf(res.json().id)).toMatchObject({
        state: 'sent',
        target: 'topic',
        counts: { targets: 3 },
      });
    });
    expect(topicBell).toMatchObject({ k: 'stream', stream: `topic:${topic}`, seq: 1 });

    const everyone = await plain.scard(keys.allDevices());
    const [bell] = await bells(keys.broadcastChannel(), 1, async () => {
      const res = await post({ to: { broadcast: true }, data: 'y' });
      expect(res.json().status).toBe('sent');
      expect(await statusOf(res.json().id)).toMatchObject({
        target: 'broadcast',
        counts: { targets: everyone },
      });
    });
    expect(bell).toMatchObject({ k: 'stream', stream: 'broadcast', entry: { data: '"y"' } });
  });

  it('keeps accept order for one device: 30 concurrent publishes get seqs 1..30, each once', async () => {
    const device = `dev-${randomUUID()}`;
    const ids: string[] = [];
    for (let i = 0; i < 30; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, (_, k) => post({ to: { devices: [device] }, data: i + k })),
      );
      ids.push(...batch.map((r) => r.json().id));
    }
    const got = await inbox(device);
    expect(got.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => `${i + 1}-0`));
    expect(new Set(got.map((e) => e.id))).toEqual(new Set(ids));
    // Batches were sent one after another, so each batch holds its own block of ten seqs.
    const batchOf = new Map(got.map((e, i) => [e.id, Math.floor(i / 10)]));
    expect(ids.map((id) => batchOf.get(id))).toEqual(ids.map((_, i) => Math.floor(i / 10)));
  });

  it('queues what is not cheap or not now: users, scheduled, and device lists over HERALD_DIRECT_MAX_DEVICES', async () => {
    const cases: [unknown, string][] = [
      [{ to: { users: ['u-direct'] }, data: 1 }, 'queued'],
      [{ to: { topic: 'later' }, data: 1, deliverAt: soon(60_000) }, 'scheduled'],
      [{ to: { devices: ['q1', 'q2', 'q3', 'q4'] }, data: 1 }, 'queued'],
    ];
    for (const [body, state] of cases) {
      const res = await post(body);
      expect(res.statusCode).toBe(202);
      expect(res.json().status).toBe(state);
      expect(await queue.getJob(res.json().id)).toBeDefined();
    }
  });

  it('one Idempotency-Key: three concurrent publishes append once, under one id', async () => {
    const device = `dev-${randomUUID()}`;
    const key = `idem-${randomUUID()}`;
    const body = { to: { devices: [device] }, data: { once: true } };
    const results = await Promise.all([1, 2, 3].map(() => post(body, { 'idempotency-key': key })));
    expect(new Set(results.map((r) => r.json().id)).size).toBe(1);
    // The first is delivered before its 202 and says so; replays answer the current state, the same.
    expect(results.map((r) => r.json().status)).toEqual(['sent', 'sent', 'sent']);
    expect(await inbox(device)).toHaveLength(1);
  });
});

describe('batch publish', () => {
  let direct: HeraldApi;
  beforeAll(async () => {
    direct = await appWith({ HERALD_MAX_BATCH: '20' });
  });
  afterAll(() => direct?.close());

  const batch = (notifications: unknown[], headers: Record<string, string> = {}) =>
    direct.inject({
      method: 'POST',
      url: '/v1/notifications/batch',
      headers: { ...auth(), ...headers },
      payload: { notifications } as object,
    });
  const inboxIds = async (device: string) =>
    (await plain.xrange(keys.inbox(device).stream, '-', '+')).map(([, f]) => f[f.indexOf('i') + 1]);

  it('accepts every item in array order: 202, one result per item, per-device seqs in order', async () => {
    const device = `dev-${randomUUID()}`;
    const items = [
      ...Array.from({ length: 5 }, (_, i) => ({ to: { devices: [device] }, data: { n: i } })),
      { to: { users: ['u-batch'] }, data: 1 },
      { to: { topic: 'batch.news' }, data: 2, deliverAt: soon(60_000) },
    ];
    const res = await batch(items);
    expect(res.statusCode).toBe(202);
    const { results } = res.json() as { results: { id: string; status: string }[] };
    expect(results.map((r) => r.status)).toEqual([
      'sent',
      'sent',
      'sent',
      'sent',
      'sent',
      'queued',
      'scheduled',
    ]);
    expect(new Set(results.map((r) => r.id)).size).toBe(7);
    expect(await inboxIds(device)).toEqual(results.slice(0, 5).map((r) => r.id));
    expect((await jobOf(results[5]?.id as string))?.data.to).toEqual({ users: ['u-batch'] });
    expect(await (await jobOf(results[6]?.id as string))?.getState()).toBe('delayed');
  });

  it('refuses the whole batch for one bad item, naming it, and writes nothing', async () => {
    const device = `dev-${randomUUID()}`;
    const ok = { to: { devices: [device] }, data: 1 };
    const bad = await batch([ok, { to: { devices: ['bad id'] }, data: 1 }]);
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'HERALD_BAD_REQUEST' });
    expect(bad.json().message).toMatch(/^notifications\[1\]\.to\.devices\[0\] /);
    const big = await batch([ok, ok, { to: { devices: [device] }, data: 'x'.repeat(300) }]);
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({
      code: 'HERALD_DATA_TOO_LARGE',
      message: 'notifications[2]: data is 302 bytes as JSON, more than the 256 allowed',
    });
    const far = await batch([{ ...ok, deliverAt: new Date(Date.now() + 2 * 86400_000).toISOString() }]);
    expect(far.statusCode).toBe(400);
    expect(far.json().message).toMatch(/^notifications\[0\]: deliverAt is more than/);
    expect(await inboxIds(device)).toEqual([]);
  });

  it('400 for an empty batch, one over HERALD_MAX_BATCH, and an Idempotency-Key', async () => {
    const one = { to: { broadcast: true }, data: 1 };
    for (const [items, headers] of [
      [[], {}],
      [Array.from({ length: 21 }, () => one), {}],
      [[one], { 'idempotency-key': 'k1' }],
    ] as [unknown[], Record<string, string>][]) {
      const res = await batch(items, headers);
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('HERALD_BAD_REQUEST');
    }
  });
});

describe('topics', () => {
  it('PUT subscribes from the head and rings the nodes holding the device; DELETE undoes it', async () => {
    const devices = new Devices(plain, keys, 60_000);
    const device = `dev-${randomUUID()}`;
    const topic = 'news.sport';
    await plain.set(keys.topic(topic).seq, 7);
    await devices.connect([{ device, user: `u-${device}` }], 'node-a', 60_000);
    const channel = keys.nodeChannel('node-a');
    const bells: string[] = [];
    const rung = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${bells.length} doorbells after 2 s`)), 2000);
      sub.on('message', (ch: string, msg: string) => {
        if (ch !== channel) return;
        bells.push(msg);
        if (bells.length === 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await sub.subscribe(channel);

    const put = await app.inject({
      method: 'PUT',
      url: `/v1/topics/${topic}/devices/${device}`,
      headers: auth(),
    });
    expect(put.statusCode).toBe(204);
    expect(put.body).toBe('');
    expect(await devices.topicsOf(device)).toEqual([topic]);
    expect(await devices.topicMemberCount(topic)).toBe(1);
    expect(await plain.hget(keys.cursors(device), `topic:${topic}`)).toBe('7');

    // A second PUT keeps the cursor the device already has.
    await plain.set(keys.topic(topic).seq, 9);
    await app.inject({ method: 'PUT', url: `/v1/topics/${topic}/devices/${device}`, headers: auth() });
    expect(await plain.hget(keys.cursors(device), `topic:${topic}`)).toBe('7');

    const del = await app.inject({
      method: 'DELETE',
      url: `/v1/topics/${topic}/devices/${device}`,
      headers: auth(),
    });
    expect(del.statusCode).toBe(204);
    expect(await devices.topicsOf(device)).toEqual([]);
    expect(await devices.topicMemberCount(topic)).toBe(0);

    await rung;
    expect(bells.map(decodeDoorbell)).toEqual([
      { k: 'sub', device, topic },
      { k: 'sub', device, topic },
      { k: 'unsub', device, topic },
    ]);
  });

  it('400 for a bad topic or device', async () => {
    for (const url of ['/v1/topics/a..b/devices/d1', '/v1/topics/news/devices/bad%20id']) {
      const res = await app.inject({ method: 'PUT', url, headers: auth() });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('HERALD_BAD_REQUEST');
    }
  });
});

describe('logging', () => {
  it('never writes an API key to the log', () => {
    expect(logs.lines.length).toBeGreaterThan(0);
    const all = logs.lines.join('');
    expect(all).not.toContain(KEY);
    expect(all).not.toContain(KEY2);
  });
});
