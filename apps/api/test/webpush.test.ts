import { createECDH, randomBytes } from 'node:crypto';
import { type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, WEBPUSH_QUEUE } from '@herald/store';
import { mintDeviceToken } from '@herald/token';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { auth, inspectQueue, ready, testConfig } from './helpers.js';

// The API side of Web Push (docs/webpush.md): the key route, device-token or API-key
// registration, endpoint rules, and the `push` policy of a publish.
const PREFIX = 'wptest';
const SECRET = 'webpush-test-token-secret-0123';
const VAPID_PUBLIC = createECDH('prime256v1').generateKeys().toString('base64url');

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let plain: Redis;
let app: HeraldApi;
let off: HeraldApi;

const sub = (host = 'fcm.googleapis.com') => ({
  endpoint: `https://${host}/fcm/send/${randomBytes(8).toString('hex')}`,
  keys: {
    p256dh: createECDH('prime256v1').generateKeys().toString('base64url'),
    auth: randomBytes(16).toString('base64url'),
  },
});
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const token = (device: string) => mintDeviceToken({ secret: SECRET, device, user: `u-${device}` });

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  redis = createRedis(srv.url, 'request');
  queueRedis = createRedis(srv.url, 'request');
  plain = createRedis(srv.url, 'background');
  const env = {
    HERALD_TOKEN_SECRET: SECRET,
    HERALD_VAPID_PUBLIC_KEY: VAPID_PUBLIC,
    HERALD_WEBPUSH_MAX_PER_DEVICE: '2',
    HERALD_MAX_BODY_BYTES: '16384',
    HERALD_MAX_DATA_BYTES: '8192',
  };
  app = buildApp({ config: testConfig(srv.url, PREFIX, env), redis, queueRedis });
  off = buildApp({ config: testConfig(srv.url, `${PREFIX}-off`), redis, queueRedis });
  await Promise.all([app.ready(), off.ready(), ready(redis), ready(queueRedis)]);
});
afterAll(async () => {
  await app?.close();
  await off?.close();
  for (const c of [redis, queueRedis, plain]) c?.disconnect();
  await srv?.stop();
});

describe('GET /v1/webpush/key', () => {
  it('serves the VAPID public key without an API key, and 404 when Web Push is off', async () => {
    const res = await app.inject({ url: '/v1/webpush/key' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ publicKey: VAPID_PUBLIC });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const no = await off.inject({ url: '/v1/webpush/key' });
    expect(no.statusCode).toBe(404);
    expect(no.json().code).toBe('HERALD_WEBPUSH_UNAVAILABLE');
  });
});

describe('PUT/DELETE /v1/devices/:device/webpush', () => {
  const put = (device: string, body: unknown, headers: Record<string, string>) =>
    app.inject({ method: 'PUT', url: `/v1/devices/${device}/webpush`, headers, payload: body as object });
  const listed = async (device: string) =>
    (await app.inject({ url: `/v1/admin/devices/${device}`, headers: auth() })).json().webpush as {
      host: string;
    }[];

  it("takes the device's own token or an API key, and refuses another device's token", async () => {
    expect((await put('wp-a', sub(), bearer(await token('wp-a')))).statusCode).toBe(200);
    expect((await put('wp-a', sub('web.push.apple.com'), auth())).statusCode).toBe(200);
    expect((await listed('wp-a')).map((s) => s.host).sort()).toEqual([
      'fcm.googleapis.com',
      'web.push.apple.com',
    ]);
    const other = await put('wp-a', sub(), bearer(await token('wp-b')));
    expect(other.statusCode).toBe(403);
    expect(other.json().code).toBe('HERALD_DEVICE_FORBIDDEN');
    const bad = await put('wp-a', sub(), bearer('not-a-token'));
    expect(bad.statusCode).toBe(401);
    expect(bad.json().code).toBe('HERALD_UNAUTHORIZED');
    const expired = await new SignJWT({ uid: 'u' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('wp-a')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(SECRET));
    const late = await put('wp-a', sub(), bearer(expired));
    expect(late.statusCode).toBe(401);
    expect(late.json().code).toBe('HERALD_TOKEN_EXPIRED');
    // Without token settings, only API keys.
    const noTokens = await off.inject({
      method: 'PUT',
      url: '/v1/devices/wp-a/webpush',
      headers: bearer(await token('wp-a')),
      payload: sub(),
    });
    expect(noTokens.statusCode).toBe(401);
  });

  it('keeps HERALD_WEBPUSH_MAX_PER_DEVICE subscriptions (the oldest goes) and removes by endpoint or all', async () => {
    const [s1, s2, s3] = [sub(), sub(), sub()];
    for (const s of [s1, s2, s3]) expect((await put('wp-c', s, auth())).statusCode).toBe(200);
    const ids = (await listed('wp-c')) as unknown as { id: string }[];
    expect(ids).toHaveLength(2);
    const del = (payload?: object) =>
      app.inject({
        method: 'DELETE',
        url: '/v1/devices/wp-c/webpush',
        headers: auth(),
        ...(payload ? { payload } : {}),
      });
    expect((await del({ endpoint: s3.endpoint })).statusCode).toBe(204);
    expect(await listed('wp-c')).toHaveLength(1);
    expect((await del()).statusCode).toBe(204);
    expect(await listed('wp-c')).toEqual([]);
  });

  it('refuses endpoints that are not https on an allowed push service, and malformed keys', async () => {
    for (const [endpoint, why] of [
      ['http://fcm.googleapis.com/x', 'https'],
      ['http://127.0.0.1:9/x', 'https'],
      ['https://evil.example.com/x', 'not an allowed push service'],
      ['https://user:pw@fcm.googleapis.com/x', 'credentials'],
      ['not a url', 'not a URL'],
    ] as const) {
      const res = await put('wp-d', { ...sub(), endpoint }, auth());
      expect(res.statusCode, endpoint).toBe(400);
      expect(res.json().message, endpoint).toContain(why);
    }
    const res = await put('wp-d', { ...sub(), keys: { p256dh: 'short', auth: 'x' } }, auth());
    expect(res.statusCode).toBe(400);
    expect(await listed('wp-d')).toEqual([]);
  });

  it('answers CORS preflights for pages on other origins', async () => {
    const res = await app.inject({
      method: 'OPTIONS',
      url: '/v1/devices/wp-a/webpush',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT' },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-headers']).toContain('Authorization');
    expect(res.headers['access-control-allow-methods']).toContain('PUT');
  });
});

describe('publish with push', () => {
  const publish = (a: HeraldApi, body: object) =>
    a.inject({ method: 'POST', url: '/v1/notifications', headers: auth(), payload: body });

  it('goes through the worker with the push message built once, and refuses what cannot be pushed', async () => {
    const res = await publish(app, {
      to: { devices: ['wp-e'] },
      data: { n: 1 },
      ttl: 120,
      push: { after: 5, title: 'T', body: 'B', urgency: 'high', topic: 'order-1' },
    });
    expect(res.statusCode).toBe(202);
    const { id, status } = res.json();
    expect(status).toBe('queued'); // not the direct path: the worker schedules the checks
    const job = await inspectQueue(plain, PREFIX).getJob(id);
    expect(job?.data.push).toEqual({
      after: 5,
      message: JSON.stringify({ id, stream: 'inbox', title: 'T', body: 'B', data: { n: 1 } }),
      urgency: 'high',
      topic: 'order-1',
    });
    const topic = await publish(app, {
      to: { topic: 'news' },
      data: 1,
      push: { after: 0, payload: { small: true } },
    });
    const tjob = await inspectQueue(plain, PREFIX).getJob(topic.json().id);
    expect(JSON.parse(tjob?.data.push.message)).toEqual({
      id: topic.json().id,
      stream: 'topic:news',
      data: { small: true },
    });

    const refused = async (a: HeraldApi, body: object, code: string, msg: string) => {
      const r = await publish(a, body);
      expect(r.statusCode, msg).toBe(400);
      expect(r.json().code, msg).toBe(code);
      expect(r.json().message, msg).toContain(msg);
    };
    await refused(
      app,
      { to: { broadcast: true }, data: 1, push: { after: 1 } },
      'HERALD_BAD_REQUEST',
      'not broadcast',
    );
    await refused(
      app,
      { to: { devices: ['x'] }, data: 1, ttl: 10, push: { after: 10 } },
      'HERALD_BAD_REQUEST',
      'less than the ttl',
    );
    await refused(
      off,
      { to: { devices: ['x'] }, data: 1, push: { after: 1 } },
      'HERALD_BAD_REQUEST',
      'VAPID',
    );
    await refused(
      app,
      { to: { devices: ['x'] }, data: 1, push: { after: 1, topic: 'no spaces' } },
      'HERALD_BAD_REQUEST',
      'push.topic',
    );
    // 3993 bytes of JSON fit a 4096-byte encrypted message; one more does not.
    const overhead = JSON.stringify({
      id: '00000000-0000-7000-8000-000000000000',
      stream: 'inbox',
      data: '',
    }).length;
    const fits = 'x'.repeat(3993 - overhead);
    expect((await publish(app, { to: { devices: ['x'] }, data: fits, push: { after: 1 } })).statusCode).toBe(
      202,
    );
    await refused(
      app,
      { to: { devices: ['x'] }, data: `${fits}x`, push: { after: 1 } },
      'HERALD_PUSH_TOO_LARGE',
      '3994 bytes',
    );
    expect(WEBPUSH_QUEUE).toBe('webpush');
  });

  it('applies HERALD_WEBPUSH_DEFAULT_AFTER_S to publishes without push (not to broadcast)', async () => {
    const a = buildApp({
      config: testConfig(srv.url, `${PREFIX}-def`, {
        HERALD_VAPID_PUBLIC_KEY: VAPID_PUBLIC,
        HERALD_WEBPUSH_DEFAULT_AFTER_S: '30',
      }),
      redis,
      queueRedis,
    });
    await a.ready();
    try {
      const res = await publish(a, { to: { users: ['u1'] }, data: 7 });
      const job = await inspectQueue(plain, `${PREFIX}-def`).getJob(res.json().id);
      expect(job?.data.push).toEqual({
        after: 30,
        message: JSON.stringify({ id: res.json().id, stream: 'inbox', data: 7 }),
      });
      const b = await publish(a, { to: { broadcast: true }, data: 7 });
      expect(b.json().status).toBe('sent'); // direct path, nothing to push
    } finally {
      await a.close();
    }
  });
});
