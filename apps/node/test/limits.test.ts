import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Probe, startRedis } from '@herald/stack';
import { createRedis, encodeDoorbell, Keys, Presence, Streams } from '@herald/store';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

let redis: Awaited<ReturnType<typeof startRedis>>;
const nodes: HeraldNode[] = [];
const keys = new Keys('herald');

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
});
afterAll(async () => {
  for (const n of nodes) await n.stop();
  await redis?.stop();
});

async function start(
  ...args: Parameters<typeof makeNode> extends [string, ...infer R] ? R : never
): Promise<{ node: HeraldNode; url: string; port: number }> {
  const node = makeNode(redis.url, ...args);
  nodes.push(node);
  const port = await node.start();
  return { node, port, url: `ws://127.0.0.1:${port}/v1/ws` };
}

function token(device: string, user = 'u1', exp: string | number = '1h'): Promise<string> {
  return new SignJWT({ uid: user })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

async function hello(url: string, device: string, user = 'u1', exp: string | number = '1h'): Promise<Probe> {
  const p = await Probe.open(url);
  p.send({ type: 'hello', token: await token(device, user, exp) });
  await p.until(() => p.frames.find((f) => f.type === 'welcome') ?? p.closed, 'welcome or close');
  return p;
}

/** Answers the HTTP status of a refused upgrade, or 101 when it opened. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const t = setTimeout(() => reject(new Error('upgrade timed out')), 5000);
    ws.on('open', () => {
      clearTimeout(t);
      ws.terminate();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(t);
      resolve(res.statusCode ?? 0);
    });
    ws.on('error', () => undefined);
  });
}

describe('security at the door', () => {
  it('allows listed browser Origins and native clients without Origin, refuses others with 403', async () => {
    const { url } = await start({}, { allowedOrigins: ['https://app.example'] });
    expect(await upgradeStatus(url, { origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus(url, { origin: 'https://app.example' })).toBe(101);
    expect(await upgradeStatus(url, {})).toBe(101);
  });

  it('upgrades /v1/ws with a query too; other paths and a bad handshake are refused as before', async () => {
    // The plain upgrade skips Fastify's router (ws-upgrade.ts); the answers must not change.
    const { url, port } = await start();
    const q = await Probe.open(`${url}?v=1`);
    q.send({ type: 'hello', token: await token('dev-q') });
    expect(await q.frame('welcome')).toMatchObject({ device: 'dev-q' });
    q.close();
    expect(await upgradeStatus(`ws://127.0.0.1:${port}/v1/wsx`, {})).toBe(404);
    expect(await upgradeStatus(`ws://127.0.0.1:${port}/v1/ws/`, {})).toBe(404);
  });

  it('verifies asymmetric tokens against a JWKS and refuses algorithms without a key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-jwks-'));
    const file = path.join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [jwk] }));
    const { url } = await start({}, { tokens: { jwksFile: file } });
    const es = await new SignJWT({ uid: 'u-es' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject('dev-es')
      .setExpirationTime('1h')
      .sign(privateKey);
    const ok = await Probe.open(url);
    ok.send({ type: 'hello', token: es });
    expect(await ok.frame('welcome')).toMatchObject({ device: 'dev-es', user: 'u-es' });
    ok.close();
    const hs = await Probe.open(url);
    hs.send({ type: 'hello', token: await token('dev-hs') });
    expect((await hs.waitClose()).code).toBe(4001);
    const none = await Probe.open(url);
    none.send({
      type: 'hello',
      token: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"d","uid":"u","exp":9999999999}').toString('base64url')}.`,
    });
    expect((await none.waitClose()).code).toBe(4001);
  });

  it('closes 4003 when the token expires, unless a refresh swapped it in time', async () => {
    const { url } = await start();
    const exp = Math.floor(Date.now() / 1000) + 2;
    const a = await hello(url, 'dev-exp-a', 'u1', exp);
    const b = await hello(url, 'dev-exp-b', 'u1', exp);
    b.send({ type: 'refresh', token: await token('dev-exp-b', 'u1', '1h') });
    expect((await a.waitClose(5000)).code).toBe(4003);
    // a closed at the old expiry; b, refreshed, still answers.
    b.send({ type: 'ping' });
    await b.frame('pong');
    expect(b.closed).toBeUndefined();
    b.send({ type: 'refresh', token: await token('someone-else', 'u1', '1h') });
    expect((await b.waitClose()).code).toBe(4001);
  });
});

describe('start', () => {
  it('emits no deprecation warning and answers readiness in the shared health shape', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? w.message);
    process.on('warning', onWarning);
    try {
      const { port } = await start({}, { nodeId: 'node-start' });
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect([ready.status, await ready.json()]).toEqual([200, { status: 'ok', service: 'node' }]);
      // process.emitWarning reports on the next tick.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });
});

describe('limits, each with a close code and reason', () => {
  it('caps connections per node and flips readiness', async () => {
    const { url, port } = await start({ maxConnections: 3 }, { nodeId: 'node-cap' });
    const open = [await Probe.open(url), await Probe.open(url), await Probe.open(url)];
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({
      status: 'unavailable',
      service: 'node',
      code: 'HERALD_NOT_READY',
      message: 'at capacity',
    });
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok', service: 'node' }]);
    const fourth = await Probe.open(url);
    expect(await fourth.waitClose()).toMatchObject({ code: 4013, reason: 'node at capacity' });
    for (const p of open) p.close();
  });

  it('limits the accept rate', async () => {
    const { url } = await start({}, { acceptRate: 3, nodeId: 'node-rate' });
    const probes = await Promise.all(Array.from({ length: 10 }, (_, i) => hello(url, `rate-${i}`)));
    const refused = probes.filter(
      (p) => p.closed?.code === 4013 && p.closed.reason === 'accept rate exceeded',
    );
    expect(refused.length).toBeGreaterThanOrEqual(6);
    expect(probes.filter((p) => p.frames[0]?.type === 'welcome').length).toBe(10 - refused.length);
    for (const p of probes) p.close();
  });

  it('caps connections per user', async () => {
    const { url } = await start({ maxConnectionsPerUser: 2 }, { nodeId: 'node-user' });
    const a = await hello(url, 'pu-1', 'heavy-user');
    const b = await hello(url, 'pu-2', 'heavy-user');
    const c = await hello(url, 'pu-3', 'heavy-user');
    expect(c.closed).toMatchObject({ code: 4013 });
    expect(a.closed).toBeUndefined();
    expect(b.closed).toBeUndefined();
    a.close();
    const d = await hello(url, 'pu-3', 'heavy-user');
    await d.frame('welcome');
    b.close();
    d.close();
  });

  it('limits client frames per second', async () => {
    const { url } = await start({ frameRate: 5 }, { nodeId: 'node-frames' });
    const p = await hello(url, 'chatty');
    for (let i = 0; i < 40; i++) p.send({ type: 'ping' });
    expect(await p.waitClose()).toMatchObject({ code: 4008, reason: 'frame rate exceeded' });
  });

  it('closes a slow consumer and removes its presence', async () => {
    const { node, url } = await start({ slowConsumerBytes: 64 * 1024 }, { nodeId: 'node-slow' });
    const cmd = createRedis(redis.url, 'background');
    const streams = new Streams(cmd, keys, { inboxMaxLen: 100_000, topicMaxLen: 1000, keepMs: 60_000 });
    const p = await hello(url, 'slow-dev');
    // Stop reading: the kernel buffers fill, then the node's send buffer grows.
    (p.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const data = JSON.stringify({ blob: 'x'.repeat(4000) });
    for (let i = 0; i < 3000 && node.hub.size > 0; i++) {
      const e = { id: `slow-${i}`, data, ts: Date.now(), exp: Date.now() + 60_000 };
      const [r] = await streams.appendInboxes(['slow-dev'], e);
      await cmd.publish(
        keys.nodeChannel('node-slow'),
        encodeDoorbell({ k: 'inbox', entry: e, to: [['slow-dev', r!.seq]] }),
      );
    }
    expect(node.hub.size).toBe(0);
    const presence = new Presence(cmd, keys, 60_000);
    const deadline = Date.now() + 5000;
    while ((await presence.nodesOf('slow-dev')).length > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(await presence.nodesOf('slow-dev')).toEqual([]);
    p.close();
    cmd.disconnect();
  });
});

describe('heartbeats', () => {
  it('drops a peer that stops answering pings, and its presence', async () => {
    const { node, url } = await start({ heartbeatMs: 200 }, { nodeId: 'node-hb' });
    const cmd = createRedis(redis.url, 'background');
    const presence = new Presence(cmd, keys, 60_000);
    const live = await hello(url, 'hb-live');
    const dead = await hello(url, 'hb-dead');
    expect(await presence.nodesOf('hb-dead')).toEqual(['node-hb']);
    (dead.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const deadline = Date.now() + 3000;
    while (node.hub.size > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(node.hub.size).toBe(1);
    const until = Date.now() + 2000;
    while ((await presence.nodesOf('hb-dead')).length > 0 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    expect(await presence.nodesOf('hb-dead')).toEqual([]);
    expect(await presence.nodesOf('hb-live')).toEqual(['node-hb']);
    live.close();
    dead.close();
    cmd.disconnect();
  });
});
