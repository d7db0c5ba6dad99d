import { Writable } from 'node:stream';
import { http, SseReader, startRedis } from '@herald/stack';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_REDACTION, redactUrl } from '../src/log.js';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

// The device token in a cookie (POST/DELETE /v1/cookie; docs/protocol.md), over plain HTTP.
let redis: Awaited<ReturnType<typeof startRedis>>;
/** Any origin allowed (no list), logging everything at trace level. */
let open: HeraldNode;
/** Origins listed, and HERALD_COOKIE_SECURE. */
let listed: HeraldNode;
let base: string;
let listedBase: string;
let logged = '';
const APP = 'http://app.test';

async function token(device: string, exp: string | number = '1h') {
  return new SignJWT({ uid: 'u-cookie' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

const COOKIE = /^herald_token=([^;]+); Max-Age=(\d+); Path=\/v1; HttpOnly; SameSite=Strict(; Secure)?$/;

beforeAll(async () => {
  redis = await startRedis();
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  open = makeNode(redis.url, {}, { pollMaxWaitMs: 1000 }, pino({ level: 'trace' }, sink));
  listed = makeNode(redis.url, {}, { nodeId: 'node-l', allowedOrigins: [APP], cookieSecure: true });
  base = `http://127.0.0.1:${await open.start()}`;
  listedBase = `http://127.0.0.1:${await listed.start()}`;
});

afterAll(async () => {
  await open?.stop();
  await listed?.stop();
  await redis?.stop();
});

describe('the token cookie', () => {
  it('is set from a Bearer token for the rest of its life, HttpOnly, SameSite=Strict, Path=/v1', async () => {
    const t = await token('c-1');
    const r = await http('POST', `${base}/v1/cookie`, { headers: { authorization: `Bearer ${t}` } });
    expect(r.status).toBe(204);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const m = COOKIE.exec(r.headers.get('set-cookie') ?? '');
    expect(m, r.headers.get('set-cookie') ?? '').not.toBeNull();
    expect(m![1]).toBe(t);
    expect(Number(m![2])).toBeGreaterThan(3500);
    expect(Number(m![2])).toBeLessThanOrEqual(3600);
    expect(m![3]).toBeUndefined();
    // Secure behind a TLS proxy that says so, and always with HERALD_COOKIE_SECURE.
    const tls = await http('POST', `${base}/v1/cookie`, {
      headers: { authorization: `Bearer ${t}`, 'x-forwarded-proto': 'https' },
    });
    expect(tls.headers.get('set-cookie')).toMatch(/; Secure$/);
    const always = await http('POST', `${listedBase}/v1/cookie`, {
      headers: { authorization: `Bearer ${t}` },
    });
    expect(always.headers.get('set-cookie')).toMatch(/; Secure$/);
  });

  it('is refused without a valid Bearer token (401 with a code, no cookie); the query or a cookie do not set it', async () => {
    const t = await token('c-2');
    const cases: [Record<string, string>, string, string][] = [
      [{}, '', 'HERALD_UNAUTHORIZED'],
      [{ authorization: 'Basic abc' }, '', 'HERALD_UNAUTHORIZED'],
      [{ authorization: 'Bearer not-a-jwt' }, '', 'HERALD_UNAUTHORIZED'],
      [
        { authorization: `Bearer ${await token('c-2', Math.floor(Date.now() / 1000) - 10)}` },
        '',
        'HERALD_TOKEN_EXPIRED',
      ],
      [{}, `?token=${t}`, 'HERALD_UNAUTHORIZED'],
      [{ cookie: `herald_token=${t}` }, '', 'HERALD_UNAUTHORIZED'],
    ];
    for (const [headers, q, code] of cases) {
      const r = await http('POST', `${base}/v1/cookie${q}`, { headers });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.json).toMatchObject({ code });
      expect(r.headers.get('set-cookie')).toBeNull();
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="herald"');
    }
  });

  it('authenticates GET /v1/sse, GET /v1/poll and POST /v1/acks when no header or ?token= is given', async () => {
    const t = await token('c-3');
    const cookie = `theme=dark; herald_token=${t}; other=1`;
    const s = await SseReader.open(`${base}/v1/sse`, { cookie });
    expect(JSON.parse((await s.event('welcome')).data)).toMatchObject({ type: 'welcome', device: 'c-3' });
    s.close();
    const p = await http('GET', `${base}/v1/poll?wait=0`, { headers: { cookie } });
    expect(p.status).toBe(200);
    expect(p.json).toMatchObject({ frames: [] });
    const a = await http('POST', `${base}/v1/acks`, {
      headers: { cookie, 'content-type': 'application/json' },
      body: '{"cursors":{"inbox":0}}',
    });
    expect(a.status).toBe(204);
    // A header or ?token= wins over the cookie, even when it is the bad one.
    const h = await http('GET', `${base}/v1/poll?wait=0`, {
      headers: { cookie, authorization: 'Bearer nope' },
    });
    expect(h.status).toBe(401);
    const q = await http('GET', `${base}/v1/poll?wait=0&token=nope`, { headers: { cookie } });
    expect(q.status).toBe(401);
    // An empty or foreign cookie is no token.
    for (const c of ['herald_token=', 'herald_tokenx=abc', 'x=herald_token'])
      expect((await http('GET', `${base}/v1/poll?wait=0`, { headers: { cookie: c } })).status, c).toBe(401);
  });

  it('is cleared by DELETE /v1/cookie', async () => {
    const r = await http('DELETE', `${base}/v1/cookie`);
    expect(r.status).toBe(204);
    expect(r.headers.get('set-cookie')).toBe('herald_token=; Max-Age=0; Path=/v1; HttpOnly; SameSite=Strict');
    const s = await http('DELETE', `${listedBase}/v1/cookie`);
    expect(s.headers.get('set-cookie')).toMatch(/^herald_token=; Max-Age=0;.*; Secure$/);
  });

  it('crosses origins with credentials only for the listed origins', async () => {
    const t = await token('c-4');
    const ok = await http('POST', `${listedBase}/v1/cookie`, {
      headers: { authorization: `Bearer ${t}`, origin: APP },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    const pre = await http('OPTIONS', `${listedBase}/v1/cookie`, {
      headers: { origin: APP, 'access-control-request-method': 'DELETE' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toContain('DELETE');
    expect(pre.headers.get('access-control-allow-credentials')).toBe('true');
    const evil = await http('POST', `${listedBase}/v1/cookie`, {
      headers: { authorization: `Bearer ${t}`, origin: 'http://evil.test' },
    });
    expect(evil.status).toBe(403);
    expect(evil.json).toMatchObject({ code: 'HERALD_ORIGIN_FORBIDDEN' });
    expect(evil.headers.get('set-cookie')).toBeNull();
    // Without a list (any origin), no credentials: the browser keeps the cookie to same-origin use.
    const any = await http('POST', `${base}/v1/cookie`, {
      headers: { authorization: `Bearer ${t}`, origin: 'http://evil.test' },
    });
    expect(any.headers.get('access-control-allow-origin')).toBe('http://evil.test');
    expect(any.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('never reaches the node log, nor does the token query parameter', async () => {
    expect(redactUrl('/v1/sse?topics=a&token=abc.def.ghi&x=1')).toBe('/v1/sse?topics=a&token=[redacted]&x=1');
    expect(redactUrl('/v1/poll?token=abc')).toBe('/v1/poll?token=[redacted]');
    const t = await token('c-5');
    const sig = t.split('.')[2]!;
    await http('POST', `${base}/v1/cookie`, { headers: { authorization: `Bearer ${t}` } });
    await http('GET', `${base}/v1/nowhere`, { headers: { cookie: `herald_token=${t}` } });
    await http('GET', `${base}/v1/poll?wait=0&cursors=bad`, { headers: { cookie: `herald_token=${t}` } });
    const s = await SseReader.open(`${base}/v1/sse`, { cookie: `herald_token=${t}` });
    await s.event('welcome');
    s.close();
    // The session the cookie opened is logged (by device), the token is not.
    expect(logged).toContain('"device":"c-5"');
    expect(logged).not.toContain(sig);
    // Nor when a request's headers are logged (Fastify's error lines): the redaction covers them.
    let line = '';
    const log = pino(
      { level: 'info', redact: LOG_REDACTION.redact },
      new Writable({
        write(chunk, _enc, cb) {
          line += chunk.toString();
          cb();
        },
      }),
    );
    log.info({ req: { headers: { cookie: `herald_token=${t}`, authorization: `Bearer ${t}` } } }, 'x');
    expect(line).toContain('[redacted]');
    expect(line).not.toContain(sig);
  });
});
