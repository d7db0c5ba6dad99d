import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex } from '@herald/config';
import { type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis } from '@herald/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { captureLogger, ready, testConfig } from './helpers.js';

const PREFIX = 'tenancy';
const ADMIN = 'shop-admin-0123456789';
const PUB = 'shop-publish-0123456789';
const OLD = 'shop-expired-0123456789';
const BLOG = 'blog-admin-0123456789';

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let app: HeraldApi;
let dir: string;
const logs = captureLogger();

const key = (id: string, k: string, scopes: string[], expiresAt?: string) => ({
  id,
  sha256: sha256Hex(k),
  scopes,
  ...(expiresAt ? { expiresAt } : {}),
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'herald-tenancy-'));
  const file = join(dir, 'apps.json');
  writeFileSync(
    file,
    JSON.stringify({
      apps: [
        {
          id: 'shop',
          keys: [
            key('admin', ADMIN, ['admin', 'publish', 'status:read']),
            key('pub', PUB, ['publish']),
            key('old', OLD, ['publish'], '2020-01-01T00:00:00Z'),
          ],
          tokens: { secret: 'shop-secret-0123456789' },
          limits: { keyPublishesPerSecond: 3, maxBatch: 2, notificationsPerSecond: 10 },
        },
        {
          id: 'blog',
          keys: [key('admin', BLOG, ['admin', 'publish'])],
          tokens: { secret: 'blog-secret-0123456789' },
        },
      ],
    }),
  );
  srv = await startRedis({ appendonly: false });
  redis = createRedis(srv.url, 'request');
  queueRedis = createRedis(srv.url, 'request');
  app = buildApp({
    config: testConfig(srv.url, PREFIX, { HERALD_APPS_FILE: file, HERALD_API_KEY_CACHE_MS: '0' }),
    redis,
    queueRedis,
    loggerInstance: logs.logger,
  });
  await Promise.all([app.ready(), ready(redis), ready(queueRedis)]);
});

afterAll(async () => {
  await app?.close();
  for (const c of [redis, queueRedis]) c?.disconnect();
  await srv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const call = (k: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${k}` }, ...(payload ? { payload } : {}) });
const publish = (k: string, devices = ['d1']) =>
  call(k, 'POST', '/v1/notifications', { to: { devices }, data: { t: 1 } });

describe('scoped keys', () => {
  it('a publish-only key publishes but gets 403 HERALD_FORBIDDEN_SCOPE on the admin API and on status', async () => {
    const ok = await publish(PUB);
    expect(ok.statusCode).toBe(202);
    for (const [method, url] of [
      ['GET', '/v1/admin/nodes'],
      ['GET', '/v1/admin/keys'],
      ['GET', `/v1/notifications/${ok.json().id}`],
    ] as const) {
      const r = await call(PUB, method, url);
      expect(r.statusCode, url).toBe(403);
      expect(r.json().code).toBe('HERALD_FORBIDDEN_SCOPE');
    }
    expect((await call(ADMIN, 'GET', `/v1/notifications/${ok.json().id}`)).statusCode).toBe(200);
    expect((await call(PUB, 'GET', '/v1/nowhere')).statusCode).toBe(404);
    // Request log lines name the app and the key's id.
    expect(logs.lines.some((l) => l.includes('"app":"shop"') && l.includes('"key":"pub"'))).toBe(true);
  });

  it('an expired key is 401 with its own message; an unknown key 401 invalid', async () => {
    const r = await publish(OLD);
    expect(r.statusCode).toBe(401);
    expect(r.json()).toEqual({
      code: 'HERALD_UNAUTHORIZED',
      message: 'API key expired at 2020-01-01T00:00:00.000Z',
    });
    expect((await publish('nobody-0123456789abc')).json().message).toBe('invalid API key');
  });

  it('runtime keys: created once in clear, listed without it, revoked; config keys cannot be revoked here', async () => {
    const created = await call(ADMIN, 'POST', '/v1/admin/keys', {
      scopes: ['publish'],
      expiresIn: 3600,
      name: 'ci',
    });
    expect(created.statusCode).toBe(201);
    const { key: k, id } = created.json();
    expect(k).toMatch(/^hrld_/);
    expect((await publish(k)).statusCode).toBe(202);

    // Redis holds its hash, never the key itself.
    const dump = JSON.stringify(
      await Promise.all((await redis.keys('*apikeys*')).map((x) => redis.hgetall(x))),
    );
    expect(dump).toContain(sha256Hex(k));
    expect(dump).not.toContain(k);

    const list = await call(ADMIN, 'GET', '/v1/admin/keys');
    const listed = list.json().keys as { id: string; source: string; name: string | null }[];
    expect(listed.map((x) => [x.id, x.source])).toEqual([
      ['admin', 'config'],
      ['pub', 'config'],
      ['old', 'config'],
      [id, 'redis'],
    ]);
    expect(list.body).not.toContain(k);
    expect(list.body).not.toContain(sha256Hex(k));
    // Another app's admin sees none of it, and cannot revoke it.
    expect((await call(BLOG, 'GET', '/v1/admin/keys')).json().keys).toHaveLength(1);
    expect((await call(BLOG, 'DELETE', `/v1/admin/keys/${id}`)).statusCode).toBe(404);

    const conf = await call(ADMIN, 'DELETE', '/v1/admin/keys/pub');
    expect(conf.statusCode).toBe(409);
    expect(conf.json().code).toBe('HERALD_CONFIG_KEY');

    expect((await call(ADMIN, 'DELETE', `/v1/admin/keys/${id}`)).json()).toEqual({ id, revoked: true });
    const after = await publish(k);
    expect(after.statusCode).toBe(401);
    expect(logs.lines.join('')).not.toContain(k);
  });
});

describe('limits', () => {
  it('per key: publishes over the rate are 429 HERALD_RATE_LIMITED with Retry-After; another key is unaffected', async () => {
    const codes: number[] = [];
    let refused: Awaited<ReturnType<typeof publish>> | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await publish(PUB);
      codes.push(r.statusCode);
      if (r.statusCode === 429) refused = r;
    }
    // 3 per second: within one window at most 3 of 5 pass (the window may roll over once).
    expect(codes.filter((c) => c === 202).length).toBeLessThanOrEqual(4);
    expect(refused?.json().code).toBe('HERALD_RATE_LIMITED');
    expect(Number(refused?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(
      (await call(BLOG, 'POST', '/v1/notifications', { to: { devices: ['d1'] }, data: { t: 1 } })).statusCode,
    ).toBe(202);
  });

  it('batch size per app: 413 HERALD_BATCH_TOO_LARGE', async () => {
    const item = { to: { devices: ['d1'] }, data: { t: 1 } };
    const r = await call(ADMIN, 'POST', '/v1/notifications/batch', { notifications: [item, item, item] });
    expect(r.statusCode).toBe(413);
    expect(r.json().code).toBe('HERALD_BATCH_TOO_LARGE');
  });

  it('notifications per second count listed devices', async () => {
    const many = Array.from({ length: 8 }, (_, i) => `n${i}`);
    // Wait for a fresh 1 s window so the budget of 10 is whole.
    const ttl = await redis.pttl(`${PREFIX}:rl:n:shop`);
    if (ttl > 0) await new Promise((r) => setTimeout(r, ttl + 20));
    expect((await publish(ADMIN, many)).statusCode).toBe(202);
    const over = await publish(ADMIN, ['x1', 'x2', 'x3']);
    expect(over.statusCode).toBe(429);
    expect(over.json().message).toBe('app shop is over its 10 notifications per second');
    expect((await publish(ADMIN, ['y1', 'y2'])).statusCode).toBe(202);
  });

  it('metrics count publishes per app (tenant label) and status', async () => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const value = (labels: string) =>
      Number(
        new RegExp(`^herald_tenant_publish_requests_total\\{${labels}[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ??
          0,
      );
    expect(value('tenant="shop",status="429"')).toBeGreaterThan(0);
    expect(value('tenant="blog",status="202"')).toBeGreaterThan(0);
  });
});

describe('Web Push routes of an app', () => {
  it('need scope publish with an API key, keep the API key answer, and take the app on the key route', async () => {
    const reader = (await call(ADMIN, 'POST', '/v1/admin/keys', { scopes: ['status:read'] })).json().key;
    const put = (k: string) =>
      app.inject({
        method: 'PUT',
        url: '/v1/devices/d1/webpush',
        headers: { authorization: `Bearer ${k}` },
        payload: {
          endpoint: 'https://fcm.googleapis.com/fcm/send/x1',
          keys: { p256dh: 'B'.repeat(87), auth: 'a'.repeat(22) },
        },
      });
    const scoped = await put(reader);
    expect([scoped.statusCode, scoped.json().code]).toEqual([403, 'HERALD_FORBIDDEN_SCOPE']);
    const expired = await put(OLD);
    expect(expired.statusCode).toBe(401);
    expect(expired.json().message).toMatch(/API key expired/);
    // Past auth: this API has no VAPID key for shop.
    expect((await put(PUB)).json().code).toBe('HERALD_WEBPUSH_UNAVAILABLE');
    expect((await app.inject({ url: '/v1/webpush/key?app=shop' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/v1/webpush/key?app=Not_An_App' })).statusCode).toBe(400);
  });
});
