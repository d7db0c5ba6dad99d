import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sha256Hex } from '@herald/config';
import { mintDeviceToken } from '@herald/token';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushService, type TestSubscription, vapidKeys } from '../support/push-service.js';
import { type SystemStack, startSystem, TOKEN_SECRET } from '../support/system.js';

// Web Push per app (docs/webpush.md, docs/tenancy.md): API, worker, a node, nginx and Redis as
// processes, one apps file with `default` (HERALD_VAPID_* keys) and `shop` (its own VAPID pair),
// and the local push service. The same device id in both apps: a token of one app never
// registers for the other, and a push of one app goes to that app's subscription only.

const KEY = { default: 'default-key-0123456789abcdef', shop: 'shop-key-0123456789abcdef' };
const SECRET = { default: TOKEN_SECRET, shop: 'shop-token-secret-0123456789' };
type App = keyof typeof KEY;
const GLOBAL = vapidKeys();
const SHOP = vapidKeys();

let sys: SystemStack;
let redis: Redis;
let push: PushService;
let dir: string;

const token = (app: App, device: string, secret = SECRET[app]) =>
  mintDeviceToken({ secret, device, user: `u-${device}`, ...(app === 'default' ? {} : { app }) });

async function call(method: string, url: string, auth: string, body?: unknown) {
  const res = await fetch(`${sys.apiUrl}${url}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

const register = (device: string, auth: string, sub: TestSubscription) =>
  call('PUT', `/v1/devices/${device}/webpush`, auth, { endpoint: sub.endpoint, keys: sub.keys });

/** Endpoints stored in Redis for a device, by the app's key prefix. */
async function stored(prefix: string, device: string): Promise<string[]> {
  const h = await redis.hgetall(`${prefix}{d:${device}}:webpush`);
  return Object.values(h).map((v) => (JSON.parse(v) as { endpoint: string }).endpoint);
}

beforeAll(async () => {
  push = await PushService.start();
  dir = mkdtempSync(path.join(tmpdir(), 'herald-wp-apps-'));
  const appsFile = path.join(dir, 'apps.json');
  const app = (id: App) => ({
    id,
    keys: [
      { id: `${id}-key`, sha256: sha256Hex(KEY[id]), scopes: ['publish', 'status:read', 'presence:read'] },
    ],
    tokens: { secret: SECRET[id] },
    ...(id === 'shop' ? { vapid: { ...SHOP, subject: 'mailto:shop@herald.test' } } : {}),
  });
  writeFileSync(appsFile, JSON.stringify({ apps: [app('default'), app('shop')] }));
  sys = await startSystem({
    nodes: 1,
    env: {
      HERALD_APPS_FILE: appsFile,
      HERALD_VAPID_PUBLIC_KEY: GLOBAL.publicKey,
      HERALD_VAPID_PRIVATE_KEY: GLOBAL.privateKey,
      HERALD_VAPID_SUBJECT: 'mailto:ops@herald.test',
      HERALD_WEBPUSH_ALLOW_LOCAL_HTTP: 'true',
    },
  });
  redis = new Redis(sys.redisUrl);
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await sys?.teardown();
  await push?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('Web Push per app', () => {
  it("serves each app's VAPID key, and a device token registers for its own app only", async () => {
    expect((await call('GET', '/v1/webpush/key', '')).body.publicKey).toBe(GLOBAL.publicKey);
    expect((await call('GET', '/v1/webpush/key?app=shop', '')).body.publicKey).toBe(SHOP.publicKey);
    expect((await call('GET', '/v1/webpush/key?app=nope', '')).status).toBe(404);

    const a = push.subscribe();
    const b = push.subscribe();
    expect((await register('dev-1', await token('default', 'dev-1'), a)).status).toBe(200);
    expect((await register('dev-1', await token('shop', 'dev-1'), b)).status).toBe(200);
    // A token naming shop but signed with the default app's secret verifies nowhere.
    const forged = push.subscribe();
    expect((await register('dev-1', await token('shop', 'dev-1', SECRET.default), forged)).status).toBe(401);
    // Each app's dev-1 holds only what its own token registered.
    expect(await stored('herald:', 'dev-1')).toEqual([a.endpoint]);
    expect(await stored('herald:a:shop:', 'dev-1')).toEqual([b.endpoint]);
    // A shop key removing dev-1's subscriptions removes shop's only.
    const c = push.subscribe();
    expect((await register('dev-2', KEY.shop, c)).status).toBe(200);
    expect((await call('DELETE', '/v1/devices/dev-2/webpush', KEY.default)).status).toBe(204);
    expect(await stored('herald:a:shop:', 'dev-2')).toEqual([c.endpoint]);

    // A push of shop's notification goes to shop's dev-1 subscription, signed with shop's pair;
    // then one of the default app's to its own, with the global pair.
    const shopN = await call('POST', '/v1/notifications', KEY.shop, {
      to: { devices: ['dev-1'] },
      data: { app: 'shop' },
      push: { after: 0 },
    });
    expect(shopN.status).toBe(202);
    await push.waitFor(() => push.pushes(b.id).length === 1, "shop's push", 10_000);
    const defN = await call('POST', '/v1/notifications', KEY.default, {
      to: { devices: ['dev-1'] },
      data: { app: 'default' },
      push: { after: 0 },
    });
    expect(defN.status).toBe(202);
    await push.waitFor(() => push.pushes(a.id).length === 1, "default's push", 10_000);
    expect(push.pushes(b.id)).toHaveLength(1);
    expect(push.pushes(forged.id)).toHaveLength(0);
    const [pb] = push.pushes(b.id);
    const [pa] = push.pushes(a.id);
    expect(JSON.parse(pb!.text)).toMatchObject({ id: shopN.body.id, data: { app: 'shop' } });
    expect(pb!.vapid.k).toBe(SHOP.publicKey);
    expect(JSON.parse(pa!.text)).toMatchObject({ id: defN.body.id, data: { app: 'default' } });
    expect(pa!.vapid.k).toBe(GLOBAL.publicKey);
    await expect
      .poll(async () => (await call('GET', `/v1/notifications/${shopN.body.id}`, KEY.shop)).body.counts, {
        timeout: 10_000,
      })
      .toMatchObject({ pushed: 1, pushFailed: 0 });
  });
});
