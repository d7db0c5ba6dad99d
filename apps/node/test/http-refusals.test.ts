import { http, SseReader, startRedis } from '@herald/stack';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

// The documented refusals of GET /v1/sse, GET /v1/poll and POST /v1/acks not covered by
// http.test.ts, as plain HTTP: origins, body limits, polls' own 4xx, the SSE close at `exp`.
let redis: Awaited<ReturnType<typeof startRedis>>;
let node: HeraldNode;
let base: string;
const APP = 'http://app.test';

async function token(device: string, claims: Record<string, unknown> = {}, exp: string | number = '1h') {
  return new SignJWT({ uid: 'u-ref', ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

beforeAll(async () => {
  redis = await startRedis();
  node = makeNode(redis.url, {}, { allowedOrigins: [APP], pollMaxWaitMs: 1000 });
  base = `http://127.0.0.1:${await node.start()}`;
});

afterAll(async () => {
  await node?.stop();
  await redis?.stop();
});

describe('HTTP transport refusals', () => {
  it('refuses an origin outside HERALD_ALLOWED_ORIGINS on every route (403), preflight included', async () => {
    const auth = { authorization: `Bearer ${await token('r-1')}` };
    const json = { ...auth, 'content-type': 'application/json' };
    const reqs: [string, string, Record<string, string>, string?][] = [
      ['GET', '/v1/sse', auth],
      ['GET', '/v1/poll?wait=0', auth],
      ['POST', '/v1/acks', json, '{"cursors":{"inbox":0}}'],
      ['OPTIONS', '/v1/sse', { 'access-control-request-method': 'GET' }],
    ];
    for (const [method, path, headers, body] of reqs) {
      const evil = await http(method, `${base}${path}`, {
        headers: { ...headers, origin: 'http://evil.test' },
        body,
      });
      expect(evil.status, `${method} ${path}`).toBe(403);
      expect(evil.json).toMatchObject({ code: 'HERALD_ORIGIN_FORBIDDEN' });
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    }
    const pre = await http('OPTIONS', `${base}/v1/acks`, {
      headers: { origin: APP, 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(APP);
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET, POST, DELETE');
    expect(pre.headers.get('access-control-allow-headers')).toBe(
      'authorization, content-type, last-event-id',
    );
    const poll = await http('GET', `${base}/v1/poll?wait=0`, { headers: { ...auth, origin: APP } });
    expect(poll.status).toBe(200);
    expect(poll.headers.get('access-control-allow-origin')).toBe(APP);
  });

  it('refuses ack bodies over 64 KiB (413) or not JSON (400), and reads the 2. cursor form', async () => {
    const headers = { authorization: `Bearer ${await token('r-2')}`, 'content-type': 'application/json' };
    const big = await http('POST', `${base}/v1/acks`, {
      headers,
      body: JSON.stringify({ cursors: { inbox: 0 }, pad: 'x'.repeat(70_000) }),
    });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ code: 'HERALD_PAYLOAD_TOO_LARGE' });
    const notJson = await http('POST', `${base}/v1/acks`, { headers, body: '{"cursors":' });
    expect(notJson.status).toBe(400);
    expect(notJson.json).toMatchObject({ code: 'HERALD_BAD_REQUEST' });
    expect((await http('POST', `${base}/v1/acks`, { headers, body: '{"cursors":"2.inbox:0"}' })).status).toBe(
      204,
    );
    const past = await http('POST', `${base}/v1/acks`, { headers, body: '{"cursors":"2.inbox:9"}' });
    expect(past.status).toBe(400);
    expect((past.json as { message: string }).message).toMatch(/inbox/);
  });

  it('refuses polls as streams: 401 expired, 400 cursors or topics, 403 topics outside the claims', async () => {
    const expired = await token('r-3', {}, Math.floor(Date.now() / 1000) - 10);
    const cases: [string, string, number, string][] = [
      [expired, '', 401, 'HERALD_TOKEN_EXPIRED'],
      [await token('r-3'), '&cursors=2.inbox:1,inbox:2', 400, 'HERALD_BAD_REQUEST'],
      [await token('r-3'), '&topics=a..b', 400, 'HERALD_BAD_REQUEST'],
      [await token('r-3', { topics: ['news.*'] }), '&topics=sport', 403, 'HERALD_TOPIC_FORBIDDEN'],
    ];
    for (const [t, q, status, code] of cases) {
      const r = await http('GET', `${base}/v1/poll?wait=0${q}`, {
        headers: { authorization: `Bearer ${t}` },
      });
      expect(r.status, q).toBe(status);
      expect(r.json).toMatchObject({ code });
    }
  });

  it('ends an SSE stream at the token expiry with an error event 4003', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const r = await SseReader.open(`${base}/v1/sse`, {
      authorization: `Bearer ${await token('r-4', {}, exp)}`,
    });
    await r.event('welcome');
    const err = await r.event('error', 1, 5000);
    expect(JSON.parse(err.data)).toMatchObject({ code: 4003 });
    r.close();
  });
});
