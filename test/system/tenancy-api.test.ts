import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sha256Hex } from '@herald/config';
import { type AppHandle, type RedisHandle, startApi, startRedis } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The API side of apps (docs/tenancy.md) across two real API processes on one real Redis:
// limits held across processes, scoped keys, rotation without a failed publish, reload.

const SHOP_ADMIN = 'shop-admin-key-0123456789';
const SHOP_PUB = 'shop-publish-key-0123456789';
const BLOG_ADMIN = 'blog-admin-key-0123456789';
const BLOG_SPARE = 'blog-spare-key-0123456789';
/** Publishes per second of the app `shop` (burst = rate: a 1 s window of 40). */
const RATE = 40;

let dir: string;
let appsFile: string;
let redis: RedisHandle;
const apis: AppHandle[] = [];

const key = (id: string, k: string, scopes: string[]) => ({ id, sha256: sha256Hex(k), scopes });
function appsJson(withSpare: boolean) {
  return JSON.stringify({
    apps: [
      {
        id: 'shop',
        keys: [
          key('admin', SHOP_ADMIN, ['admin', 'publish', 'status:read']),
          key('pub', SHOP_PUB, ['publish']),
        ],
        tokens: { secret: 'shop-token-secret-0123456789' },
        limits: { publishesPerSecond: RATE },
      },
      {
        id: 'blog',
        keys: [
          key('admin', BLOG_ADMIN, ['admin', 'publish', 'status:read']),
          ...(withSpare ? [key('spare', BLOG_SPARE, ['publish'])] : []),
        ],
        tokens: { secret: 'blog-token-secret-0123456789' },
      },
    ],
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-tenancy-api-'));
  appsFile = path.join(dir, 'apps.json');
  writeFileSync(appsFile, appsJson(true));
  redis = await startRedis({ appendonly: false });
  const logDir = process.env.HERALD_TEST_LOGS ?? dir;
  for (const name of ['api-1', 'api-2'])
    apis.push(
      await startApi({
        name,
        redisUrl: redis.url,
        logDir,
        logLevel: 'info',
        apiKeys: [],
        env: { HERALD_APPS_FILE: appsFile, HERALD_API_KEY_CACHE_MS: '1000' },
      }),
    );
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(apis.map((a) => a.stop()));
  await redis?.stop();
  if (dir && !process.env.HERALD_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
}, 30_000);

interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | null;
}

async function call(api: AppHandle, k: string, method: string, url: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${api.url}${url}`, {
    method,
    headers: { authorization: `Bearer ${k}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown>,
    retryAfter: res.headers.get('retry-after'),
  };
}
const publish = (api: AppHandle, k: string, device: string) =>
  call(api, k, 'POST', '/v1/notifications', { to: { devices: [device] }, data: { n: 1 } });
const api1 = () => apis[0] as AppHandle;
const api2 = () => apis[1] as AppHandle;

/** Polls `check` every 50 ms until it is true, at most `ms`. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('rate limits across two API processes', () => {
  it('holds 4 concurrent publishers to the app rate; every refusal is a 429 with Retry-After; accepted ones exist; another app is unaffected', async () => {
    // 3 windows of 1 s from the first publish; publishers stop starting requests a little
    // before the third window ends, so the run spans exactly 3 windows.
    const WINDOWS = 3;
    const start = Date.now();
    const stopAt = start + WINDOWS * 1000 - 150;
    const accepted: string[] = [];
    const refused: Answer[] = [];
    const blogAccepted: string[] = [];
    const others: Answer[] = [];
    const publisher = async (api: AppHandle, k: string, into: string[]) => {
      while (Date.now() < stopAt) {
        const r = await publish(api, k, 'rate-dev');
        if (r.status === 202) into.push(r.body.id as string);
        else if (r.status === 429) refused.push(r);
        else others.push(r);
      }
    };
    await Promise.all([
      publisher(api1(), SHOP_ADMIN, accepted),
      publisher(api1(), SHOP_PUB, accepted),
      publisher(api2(), SHOP_ADMIN, accepted),
      publisher(api2(), SHOP_PUB, accepted),
      publisher(api2(), BLOG_ADMIN, blogAccepted),
    ]);
    expect(others).toEqual([]);
    const expected = RATE * WINDOWS;
    expect(
      accepted.length,
      `accepted ${accepted.length} of ${accepted.length + refused.length}`,
    ).toBeGreaterThanOrEqual(expected * 0.9);
    expect(accepted.length).toBeLessThanOrEqual(expected * 1.1);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.body.code).toBe('HERALD_RATE_LIMITED');
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    // The app without limits was never refused while shop was.
    expect(blogAccepted.length).toBeGreaterThan(0);

    // Every accepted publish exists, sent to its device, and under its own app only.
    for (const id of accepted) {
      const s = await call(api1(), SHOP_ADMIN, 'GET', `/v1/notifications/${id}`);
      expect(s.status, id).toBe(200);
      expect(s.body.state).toBe('sent');
      expect(s.body.counts).toMatchObject({ targets: 1 });
    }
    const crossed = await call(api1(), BLOG_ADMIN, 'GET', `/v1/notifications/${accepted[0]}`);
    expect(crossed.status).toBe(404);
    for (const id of blogAccepted.slice(0, 20))
      expect((await call(api2(), BLOG_ADMIN, 'GET', `/v1/notifications/${id}`)).status).toBe(200);
  }, 60_000);
});

describe('scoped keys', () => {
  it('a publish-only key gets 403 on the admin API of either process', async () => {
    for (const api of apis) {
      const r = await call(api, SHOP_PUB, 'GET', '/v1/admin/keys');
      expect(r.status).toBe(403);
      expect(r.body.code).toBe('HERALD_FORBIDDEN_SCOPE');
    }
  });

  it('rotation: old and new keys both work during the overlap, the old one stops at its expiry, no publish fails', async () => {
    const created = await call(api1(), BLOG_ADMIN, 'POST', '/v1/admin/keys', {
      scopes: ['publish'],
      expiresIn: 3,
    });
    expect(created.status).toBe(201);
    const old = created.body.key as string;
    const expiresAt = Date.parse(created.body.expiresAt as string);
    const fresh = (await call(api2(), BLOG_ADMIN, 'POST', '/v1/admin/keys', { scopes: ['publish'] })).body
      .key as string;

    // A publisher that "deploys" the new key half-way through the overlap, alternating processes.
    const failures: Answer[] = [];
    let n = 0;
    const switchAt = Date.now() + 1000;
    while (Date.now() < switchAt + 700) {
      const k = Date.now() < switchAt ? old : fresh;
      const r = await publish(apis[n++ % 2] as AppHandle, k, 'rot-dev');
      if (r.status !== 202) failures.push(r);
    }
    expect(failures).toEqual([]);
    // Both keys are valid together until the old one's expiry.
    if (Date.now() < expiresAt - 200) expect((await publish(api1(), old, 'rot-dev')).status).toBe(202);

    await until(
      async () => (await publish(api2(), old, 'rot-dev')).status === 401,
      6000,
      'the old key to expire',
    );
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    const after = await publish(api1(), old, 'rot-dev');
    expect(after.body).toMatchObject({
      code: 'HERALD_UNAUTHORIZED',
      message: expect.stringMatching(/^API key expired at /),
    });
    for (const api of apis) expect((await publish(api, fresh, 'rot-dev')).status).toBe(202);

    // Revoked on one process: refused there at once, on the other within its cache time (1 s here).
    const id = (await call(api2(), BLOG_ADMIN, 'GET', '/v1/admin/keys')).body.keys as {
      id: string;
      source: string;
    }[];
    const freshId = id.filter((k) => k.source === 'redis').at(-1)?.id as string;
    expect((await call(api1(), BLOG_ADMIN, 'DELETE', `/v1/admin/keys/${freshId}`)).status).toBe(200);
    expect((await publish(api1(), fresh, 'rot-dev')).status).toBe(401);
    await until(
      async () => (await publish(api2(), fresh, 'rot-dev')).status === 401,
      3000,
      'api-2 to drop the key',
    );
  }, 30_000);
});

describe('reload', () => {
  it('SIGHUP removes a key at once on both processes; a bad file keeps the current apps', async () => {
    for (const api of apis) expect((await publish(api, BLOG_SPARE, 'hup-dev')).status).toBe(202);
    writeFileSync(appsFile, appsJson(false));
    for (const api of apis) process.kill(api.pid, 'SIGHUP');
    for (const api of apis)
      await until(
        async () => (await publish(api, BLOG_SPARE, 'hup-dev')).status === 401,
        2000,
        `${api.name} to drop the key`,
      );
    for (const api of apis) expect((await publish(api, BLOG_ADMIN, 'hup-dev')).status).toBe(202);

    writeFileSync(appsFile, '{"apps": [{"id": "Bad"}]}');
    for (const api of apis) process.kill(api.pid, 'SIGHUP');
    for (const api of apis)
      await until(
        async () => readFileSync(api.logFile, 'utf8').includes('apps reload failed'),
        5000,
        `${api.name} to log the bad file`,
      );
    expect(readFileSync(api1().logFile, 'utf8')).toContain('apps[0].id: must match');
    for (const api of apis) expect((await publish(api, BLOG_ADMIN, 'hup-dev')).status).toBe(202);
  }, 30_000);
});
