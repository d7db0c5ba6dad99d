import { type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis } from '@herald/store';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { DEMO_DEVICE, DEMO_TOKEN_TTL_S } from '../src/console/routes.js';
import { auth, captureLogger, ready, testConfig } from './helpers.js';

const SECRET = 'console-test-secret-0123456789';
let srv: RedisHandle;
let conns: Redis[] = [];
let plain: HeraldApi;
let demo: HeraldApi;

function app(env: Record<string, string>): HeraldApi {
  const redis = createRedis(srv.url, 'request');
  const queueRedis = createRedis(srv.url, 'request');
  conns.push(redis, queueRedis);
  return buildApp({
    config: testConfig(srv.url, 'consoletest', env),
    redis,
    queueRedis,
    loggerInstance: captureLogger().logger,
  });
}

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  plain = app({});
  demo = app({ HERALD_TOKEN_SECRET: SECRET, HERALD_PUBLIC_WS_URL: 'wss://push.example.com/v1/ws' });
  await Promise.all([plain.ready(), demo.ready(), ...conns.map((c) => ready(c))]);
});

afterAll(async () => {
  await plain?.close();
  await demo?.close();
  for (const c of conns) c.disconnect();
  conns = [];
  await srv?.stop();
});

describe('GET /console', () => {
  it('serves the page with a strict CSP, no key needed', async () => {
    const res = await plain.inject({ method: 'GET', url: '/console' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.body).toContain('<script type="module" src="/console/console.js"></script>');
    const slash = await plain.inject({ method: 'GET', url: '/console/' });
    expect(slash.statusCode).toBe(301);
    expect(slash.headers.location).toBe('/console');
  });

  it('serves the module, the stylesheet and the SDK browser bundle', async () => {
    const js = await plain.inject({ method: 'GET', url: '/console/console.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).toContain('/console/demo-token');
    const css = await plain.inject({ method: 'GET', url: '/console/console.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    const sdk = await plain.inject({ method: 'GET', url: '/console/herald.js' });
    expect(sdk.statusCode, 'build @herald/client first').toBe(200);
    expect(sdk.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(sdk.body).toMatch(/export\s*\{[^}]*HeraldClient/);
    const none = await plain.inject({ method: 'GET', url: '/console/nope.js' });
    expect(none.statusCode).toBe(404);
    expect(none.json()).toMatchObject({ code: 'HERALD_NOT_FOUND' });
  });
});

describe('GET /console/config', () => {
  it('says whether the demo device is available and which WebSocket URL to use', async () => {
    expect((await plain.inject({ method: 'GET', url: '/console/config' })).json()).toEqual({
      wsUrl: null,
      demo: false,
      demoDevice: DEMO_DEVICE,
    });
    expect((await demo.inject({ method: 'GET', url: '/console/config' })).json()).toEqual({
      wsUrl: 'wss://push.example.com/v1/ws',
      demo: true,
      demoDevice: DEMO_DEVICE,
    });
  });
});

describe('POST /console/demo-token', () => {
  it('needs the API key', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-key-0123456789abcdef' }]) {
      const res = await demo.inject({ method: 'POST', url: '/console/demo-token', headers });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'HERALD_UNAUTHORIZED' });
    }
  });

  it('says the demo is unavailable without HERALD_TOKEN_SECRET', async () => {
    const res = await plain.inject({ method: 'POST', url: '/console/demo-token', headers: auth() });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      code: 'HERALD_DEMO_UNAVAILABLE',
      message: 'the demo device is unavailable: the API has no HERALD_TOKEN_SECRET',
    });
  });

  it('mints a short-lived HS256 token for the demo device', async () => {
    const res = await demo.inject({
      method: 'POST',
      url: '/console/demo-token',
      headers: { ...auth(), 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json() as { token: string; device: string; user: string; expiresAt: string };
    expect(body).toMatchObject({ device: DEMO_DEVICE, user: DEMO_DEVICE });
    const { payload, protectedHeader } = await jwtVerify(body.token, new TextEncoder().encode(SECRET), {
      algorithms: ['HS256'],
    });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload).toMatchObject({ sub: DEMO_DEVICE, uid: DEMO_DEVICE });
    const left = (payload.exp as number) - Date.now() / 1000;
    expect(left).toBeGreaterThan(DEMO_TOKEN_TTL_S - 5);
    expect(left).toBeLessThanOrEqual(DEMO_TOKEN_TTL_S);
  });
});

describe('console settings', () => {
  it('refuses a short token secret and a WebSocket URL that is not ws(s)', () => {
    expect(() => testConfig(srv.url, 'x', { HERALD_TOKEN_SECRET: 'short' })).toThrow(
      /HERALD_TOKEN_SECRET must be at least 16 characters/,
    );
    expect(() => testConfig(srv.url, 'x', { HERALD_PUBLIC_WS_URL: 'http://example.com' })).toThrow(
      /HERALD_PUBLIC_WS_URL/,
    );
  });
});
