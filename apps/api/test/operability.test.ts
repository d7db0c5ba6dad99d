import { metric, parseMetrics, type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, Devices, Keys, Nodes, Streams } from '@herald/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { auth, captureLogger, KEY, KEY2, ready, testConfig } from './helpers.js';

const PREFIX = 'opstest';
const keys = new Keys(PREFIX);

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let plain: Redis;
let app: HeraldApi;
const logs = captureLogger();

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  redis = createRedis(srv.url, 'request');
  queueRedis = createRedis(srv.url, 'request');
  plain = createRedis(srv.url, 'background');
  app = buildApp({ config: testConfig(srv.url, PREFIX), redis, queueRedis, loggerInstance: logs.logger });
  await Promise.all([app.ready(), ready(redis), ready(queueRedis)]);
});

afterAll(async () => {
  await app?.close();
  for (const c of [redis, queueRedis, plain]) c?.disconnect();
  await srv?.stop();
});

const publish = (payload: unknown, headers: Record<string, string> = auth()) =>
  app.inject({ method: 'POST', url: '/v1/notifications', headers, payload: payload as object });

async function scrape(a: HeraldApi = app) {
  const res = await a.inject('/metrics');
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(res.body);
}

describe('GET /metrics', () => {
  it('counts publishes by target, scheduling and path, and not idempotent replays', async () => {
    const before = await scrape();
    // Every combination is there from the start, at 0.
    expect(
      metric(before, 'herald_notifications_published_total', { target: 'devices', scheduled: 'false' }),
    ).toBe(0);
    expect(
      metric(before, 'herald_notifications_published_total', { target: 'broadcast', scheduled: 'true' }),
    ).toBe(0);

    expect((await publish({ to: { devices: ['d1'] }, data: 1 })).statusCode).toBe(202);
    const idem = { ...auth(), 'idempotency-key': 'ops-1' };
    expect((await publish({ to: { topic: 'news' }, data: 2 }, idem)).statusCode).toBe(202);
    expect((await publish({ to: { topic: 'news' }, data: 2 }, idem)).statusCode).toBe(202); // replay
    const later = new Date(Date.now() + 60_000).toISOString();
    expect((await publish({ to: { users: ['u1'] }, data: 3, deliverAt: later })).statusCode).toBe(202);

    const m = await scrape();
    const published = (target: string, scheduled: string) =>
      metric(m, 'herald_notifications_published_total', { target, scheduled, app: 'api' });
    expect(published('devices', 'false')).toBe(1);
    expect(published('topic', 'false')).toBe(1);
    expect(published('users', 'true')).toBe(1);
    expect(published('users', 'false')).toBe(0);
    expect(published('broadcast', 'false')).toBe(0);
    // Immediate device and topic publishes are appended by the API; the scheduled one is queued.
    const byPath = (path: string) => metric(m, 'herald_notifications_published_total', { path, app: 'api' });
    expect(byPath('direct')).toBe(2);
    expect(byPath('queue')).toBe(1);
  });

  it('counts rejected publishes by error code', async () => {
    expect((await publish({ to: { devices: ['bad id'] }, data: 1 })).statusCode).toBe(400);
    expect((await publish({ to: { devices: ['d1'] }, data: 'x'.repeat(300) })).statusCode).toBe(413);
    expect((await publish({ to: { devices: ['d1'] }, data: 1 }, {})).statusCode).toBe(401);
    const m = await scrape();
    expect(metric(m, 'herald_publish_rejected_total', { code: 'HERALD_BAD_REQUEST' })).toBe(1);
    expect(metric(m, 'herald_publish_rejected_total', { code: 'HERALD_DATA_TOO_LARGE' })).toBe(1);
    expect(metric(m, 'herald_publish_rejected_total', { code: 'HERALD_UNAUTHORIZED' })).toBe(1);
    // Other routes' errors are not publish rejections.
    await app.inject({ method: 'GET', url: '/v1/notifications/nope', headers: auth() });
    expect(
      metric(await scrape(), 'herald_publish_rejected_total', { code: 'HERALD_NOT_FOUND' }),
    ).toBeUndefined();
  });

  it('counts and times HTTP requests by route pattern, method and status', async () => {
    const before = await scrape();
    const route = { route: '/v1/notifications/:id', method: 'GET' };
    const was = metric(before, 'herald_http_requests_total', { ...route, status: '404' }) ?? 0;
    await app.inject({ method: 'GET', url: '/v1/notifications/abc', headers: auth() });
    await app.inject({ method: 'GET', url: '/v1/notifications/def', headers: auth() });
    await app.inject({ method: 'GET', url: '/no/such/route' });
    const m = await scrape();
    expect(metric(m, 'herald_http_requests_total', { ...route, status: '404' })).toBe(was + 2);
    expect(
      metric(m, 'herald_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' }),
    ).toBe(1);
    expect(
      metric(m, 'herald_http_requests_total', { route: '/v1/notifications', method: 'POST', status: '202' }),
    ).toBeGreaterThanOrEqual(3);
    const count = metric(m, 'herald_http_request_duration_seconds_count', route) ?? 0;
    expect(count).toBeGreaterThanOrEqual(2);
    expect(metric(m, 'herald_http_request_duration_seconds_bucket', { ...route, le: '+Inf' })).toBe(count);
    expect(metric(m, 'herald_http_request_duration_seconds_sum', route)).toBeGreaterThan(0);
  });

  it('has the default Node.js metrics, unprefixed, and app="api" on every series', async () => {
    const m = await scrape();
    expect(metric(m, 'nodejs_eventloop_lag_seconds', { app: 'api' })).toBeGreaterThanOrEqual(0);
    expect(metric(m, 'process_cpu_user_seconds_total', { app: 'api' })).toBeGreaterThan(0);
    expect(metric(m, 'herald_redis_errors_total', { app: 'api' })).toBe(0);
    expect(m.filter((s) => s.labels.app !== 'api')).toEqual([]);
  });

  it('needs no API key', async () => {
    const res = await app.inject('/metrics');
    expect(res.statusCode).toBe(200);
  });
});

describe('admin API', () => {
  const get = (url: string, key = KEY) => app.inject({ method: 'GET', url, headers: auth(key) });

  it('lists the nodes seen in the last 2 minutes with their connection counts', async () => {
    const nodes = new Nodes(plain, keys);
    const now = Date.now();
    await nodes.heartbeat('node-b', 7, now - 1000);
    await nodes.heartbeat('node-a', 3, now);
    await nodes.heartbeat('node-gone', 9, now - 3 * 60_000);
    const res = await get('/v1/admin/nodes');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      nodes: [
        { id: 'node-a', lastSeen: new Date(now).toISOString(), connections: 3 },
        { id: 'node-b', lastSeen: new Date(now - 1000).toISOString(), connections: 7 },
      ],
    });
  });

  it('shows a device: where it is live, its topics, and head and acked cursor per stream', async () => {
    const devices = new Devices(plain, keys, 3_600_000);
    const streams = new Streams(plain, keys, { inboxMaxLen: 100, topicMaxLen: 100, keepMs: 60_000 });
    // Hellos as push nodes say them (Devices.connect): on node-a with the client's address, on
    // node-b without one, and on node-old two minutes ago, so its 60 s presence has expired.
    const dev1 = { device: 'dev-1', user: 'user-1' };
    await devices.connect([{ ...dev1, address: '198.51.100.4' }], 'node-a', 60_000);
    await devices.connect([dev1], 'node-b', 60_000);
    await devices.connect([dev1], 'node-old', 60_000, Date.now() - 120_000);
    const entry = (id: string) => ({ id, data: '{}', ts: Date.now(), exp: Date.now() + 60_000 });
    await streams.appendInboxes(['dev-1'], entry('n1'));
    await streams.appendInboxes(['dev-1'], entry('n2'));
    await streams.appendTopic('news.sport', entry('n3'));
    // Subscribed through the API: its cursor starts at the topic head (1).
    const put = await app.inject({
      method: 'PUT',
      url: '/v1/topics/news.sport/devices/dev-1',
      headers: auth(),
    });
    expect(put.statusCode).toBe(204);
    await streams.appendTopic('news.sport', entry('n4'));
    await devices.advanceCursors(new Map([['dev-1', new Map([['inbox', 1]])]]));

    const res = await get('/v1/admin/devices/dev-1');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      device: 'dev-1',
      registered: true,
      nodes: [
        { id: 'node-a', address: '198.51.100.4' },
        { id: 'node-b', address: null },
      ],
      topics: ['news.sport'],
      webpush: [],
      cursors: [
        { stream: 'inbox', head: 2, acked: 1 },
        { stream: 'broadcast', head: 0, acked: null },
        { stream: 'topic:news.sport', head: 2, acked: 1 },
      ],
    });

    // A device Redis knows nothing about: empty, not an error.
    const unknown = await get('/v1/admin/devices/nobody');
    expect(unknown.statusCode).toBe(200);
    expect(unknown.json()).toEqual({
      device: 'nobody',
      registered: false,
      nodes: [],
      topics: [],
      webpush: [],
      cursors: [
        { stream: 'inbox', head: 0, acked: null },
        { stream: 'broadcast', head: 0, acked: null },
      ],
    });
  });

  it('shows a topic: subscriber count and head', async () => {
    const devices = new Devices(plain, keys, 3_600_000);
    await devices.subscribe('dev-2', 'alerts');
    await devices.subscribe('dev-3', 'alerts');
    const streams = new Streams(plain, keys, { inboxMaxLen: 100, topicMaxLen: 100, keepMs: 60_000 });
    for (const id of ['a1', 'a2', 'a3'])
      await streams.appendTopic('alerts', { id, data: '{}', ts: Date.now(), exp: Date.now() + 60_000 });
    const res = await get('/v1/admin/topics/alerts');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ topic: 'alerts', subscribers: 2, head: 3 });
    expect((await get('/v1/admin/topics/empty.one')).json()).toEqual({
      topic: 'empty.one',
      subscribers: 0,
      head: 0,
    });
  });

  it('answers 400 for invalid ids and topics, and 401 without a key', async () => {
    const bad = await get('/v1/admin/devices/bad%20id');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({
      code: 'HERALD_BAD_REQUEST',
      message: 'device in the path is not a valid id (1 to 128 of A-Z a-z 0-9 _ . : @ -)',
    });
    const topic = await get('/v1/admin/topics/news..sport');
    expect(topic.statusCode).toBe(400);
    expect(topic.json().message).toMatch(/^topic in the path is not a valid topic/);
    expect((await get(`/v1/admin/topics/${'a'.repeat(129)}`)).statusCode).toBe(400);
    // The longest valid id fits in a path parameter.
    expect((await get(`/v1/admin/devices/${'d'.repeat(128)}`)).statusCode).toBe(200);
    expect((await get('/v1/admin/nodes', KEY2)).statusCode).toBe(200);
    const anon = await app.inject({ method: 'GET', url: '/v1/admin/nodes' });
    expect(anon.statusCode).toBe(401);
  });
});

describe('OpenAPI', () => {
  it('serves the document at /docs/json and Swagger UI at /docs, without a key', async () => {
    const res = await app.inject('/docs/json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.apiKey).toEqual(
      expect.objectContaining({ type: 'http', scheme: 'bearer' }),
    );
    expect(doc.paths['/v1/admin/devices/{device}'].get.security).toEqual([{ apiKey: [] }]);
    expect(
      doc.paths['/v1/notifications'].post.responses['202'].content['application/json'].schema,
    ).toBeTruthy();
    expect(doc.paths['/healthz'].get.security).toBeUndefined();
    // The test config's limits show through (ttl max 3600).
    const body = doc.paths['/v1/notifications'].post.requestBody.content['application/json'].schema;
    expect(body.properties.ttl.maximum).toBe(3600);
    const ui = await app.inject('/docs');
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/^text\/html/);
  });
});

describe('request ids and logs', () => {
  const lines = () => logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  it('echoes a sane X-Request-Id, replaces anything else, and logs it on every line of the request', async () => {
    const given = await app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'trace-42.a:b' },
    });
    expect(given.headers['x-request-id']).toBe('trace-42.a:b');
    const made = await app.inject({ method: 'GET', url: '/healthz' });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    for (const bad of ['has space', 'x'.repeat(129), 'quote"d', 'new\u00e9line']) {
      const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': bad } });
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
    // Errors carry it too.
    const err = await publish({ to: {} }, { ...auth(), 'x-request-id': 'trace-43' });
    expect(err.statusCode).toBe(400);
    expect(err.headers['x-request-id']).toBe('trace-43');

    const mine = lines().filter((l) => l.reqId === 'trace-43');
    expect(mine.map((l) => l.msg)).toEqual(['incoming request', 'request completed']);
    for (const l of mine) expect(l.ip).toBe('127.0.0.1');
    expect(mine[1]).toMatchObject({ code: 'HERALD_BAD_REQUEST', res: { statusCode: 400 } });
    // Every request line has both.
    const requestLines = lines().filter((l) => l.req || l.res);
    expect(requestLines.length).toBeGreaterThan(10);
    for (const l of requestLines) {
      expect(l.reqId, JSON.stringify(l)).toEqual(expect.any(String));
      expect(l.ip, JSON.stringify(l)).toEqual(expect.any(String));
    }
  });

  it('logs the Idempotency-Key but never an API key', async () => {
    await publish({ to: { devices: ['d9'] }, data: 1 }, { ...auth(), 'idempotency-key': 'order-17-shipped' });
    await publish({ to: { devices: ['d9'] }, data: 1 }, auth('Bearer-wrong-0123456789abcdef'));
    const all = logs.lines.join('');
    expect(all).toContain('"idempotencyKey":"order-17-shipped"');
    expect(all).not.toContain(KEY);
    expect(all).not.toContain('Bearer-wrong-0123456789abcdef');
  });

  it('takes the client address from X-Forwarded-For only from trusted proxies (HERALD_TRUST_PROXY)', async () => {
    let n = 0;
    const build = async (trust: string) => {
      const l = captureLogger();
      const a = buildApp({
        config: testConfig(srv.url, PREFIX, { HERALD_TRUST_PROXY: trust }),
        redis,
        queueRedis,
        loggerInstance: l.logger,
      });
      await a.ready();
      const id = `xff-${++n}`;
      const headers = { 'x-forwarded-for': '203.0.113.7', 'x-request-id': id };
      await a.inject({ method: 'GET', url: '/healthz', headers, remoteAddress: '10.1.2.3' });
      await a.close();
      return l.lines.map((x) => JSON.parse(x)).filter((x) => x.reqId === id)[0]?.ip;
    };
    expect(await build('false')).toBe('10.1.2.3');
    expect(await build('10.0.0.0/8')).toBe('203.0.113.7');
    expect(await build('127.0.0.1, ::1')).toBe('10.1.2.3');
    expect(await build('true')).toBe('203.0.113.7');
    expect(() => testConfig(srv.url, PREFIX, { HERALD_TRUST_PROXY: '10.0.0.0/8,proxy.local' })).toThrow(
      /HERALD_TRUST_PROXY must be true, false or a comma-separated list .*\(bad: proxy\.local\)/,
    );
  });
});

describe('readiness while shutting down', () => {
  it('answers /readyz 503 from beginShutdown on, while /healthz and publishing still work', async () => {
    const a = buildApp({
      config: testConfig(srv.url, PREFIX),
      redis,
      queueRedis,
      loggerInstance: logs.logger,
    });
    await a.ready();
    expect((await a.inject('/readyz')).statusCode).toBe(200);
    a.beginShutdown();
    const res = await a.inject('/readyz');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      status: 'unavailable',
      service: 'api',
      code: 'HERALD_NOT_READY',
      message: 'shutting down',
    });
    expect((await a.inject('/healthz')).statusCode).toBe(200);
    const pub = await a.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: auth(),
      payload: { to: { devices: ['d1'] }, data: null },
    });
    expect(pub.statusCode).toBe(202);
    // Shutting down is not a Redis error.
    expect(metric(parseMetrics((await a.inject('/metrics')).body), 'herald_redis_errors_total')).toBe(0);
    await a.close();
  });
});
