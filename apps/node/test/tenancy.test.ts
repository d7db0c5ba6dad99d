import { Probe, startRedis } from '@herald/stack';
import { createRedis, encodeDoorbell, Keys, type NewEntry, type RedisClient, Streams } from '@herald/store';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { NodeApp } from '../src/app-scope.js';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

/**
 * Apps on one node (docs/tenancy.md), from outside: raw frames and plain HTTP. Two apps with the
 * same device, user and topic names; tokens choose their app by `aud`; the app's connection cap,
 * origins, and a reload that adds and removes apps.
 */
const SHOP_SECRET = 'shop-secret-0123456789';
const BLOG_SECRET = 'blog-secret-0123456789';
const root = new Keys('herald');
const APPS: NodeApp[] = [
  { id: 'default', tokens: { secret: SECRET } },
  {
    id: 'shop',
    tokens: { secret: SHOP_SECRET },
    allowedOrigins: ['https://shop.example'],
    limits: { maxConnections: 2 },
  },
];

let redis: Awaited<ReturnType<typeof startRedis>>;
let cmd: RedisClient;
let node: HeraldNode;
let port: number;
let url: string;
let n = 0;

/** A device token; `app` goes in `aud` as @herald/token's `app` option puts it. */
const token = (app: string | undefined, device: string, secret = SECRET, user = 'u1') =>
  new SignJWT({ uid: user, ...(app ? { aud: app } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));

const entry = (): NewEntry => ({
  id: `id-${++n}`,
  data: JSON.stringify({ n }),
  ts: Date.now(),
  exp: Date.now() + 60_000,
});

/** What the worker does for a device of `keys`' app: append, then ring its node's doorbell. */
async function publish(keys: Keys, device: string): Promise<string> {
  const e = entry();
  const streams = new Streams(cmd, keys, { inboxMaxLen: 100, topicMaxLen: 100, keepMs: 60_000 });
  const [r] = await streams.appendInboxes([device], e);
  for (const nodeId of r!.nodes)
    await cmd.publish(
      keys.nodeChannel(nodeId),
      encodeDoorbell({ k: 'inbox', entry: e, to: [[device, r!.seq]] }),
    );
  return e.id;
}

async function connect(tok: string, origin?: string): Promise<Probe> {
  if (!origin) {
    const p = await Probe.open(url);
    p.send({ type: 'hello', token: tok });
    return p;
  }
  const ws = new WebSocket(url, { origin });
  const p = new Probe(ws);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  p.send({ type: 'hello', token: tok });
  return p;
}

beforeAll(async () => {
  redis = await startRedis();
  cmd = createRedis(redis.url, 'background');
  node = makeNode(redis.url, {}, { apps: APPS });
  port = await node.start();
  url = `ws://127.0.0.1:${port}/v1/ws`;
});

afterAll(async () => {
  await node?.stop();
  cmd?.disconnect();
  await redis?.stop();
});

describe('apps on a node', () => {
  it('verifies a token with the keys of the app its aud names, and only those', async () => {
    const plain = await connect(await token(undefined, 'tok-1'));
    expect((await plain.frame('welcome')).device).toBe('tok-1');
    const shop = await connect(await token('shop', 'tok-1', SHOP_SECRET));
    await shop.frame('welcome');
    // Signed with the default app's secret but naming shop; and an app the node does not know.
    for (const [app, secret, reason] of [
      ['shop', SECRET, /invalid token/],
      ['nope', SECRET, /unknown app "nope"/],
      ['default', SHOP_SECRET, /invalid token/],
    ] as const) {
      const p = await connect(await token(app, 'tok-2', secret));
      const c = await p.waitClose();
      expect(c.code, app).toBe(4001);
      expect(c.reason).toMatch(reason);
    }
    plain.close();
    shop.close();
  });

  it('keeps two apps with the same device id apart: streams, doorbells and presence', async () => {
    const a = await connect(await token(undefined, 'same'));
    const b = await connect(await token('shop', 'same', SHOP_SECRET));
    await a.frame('welcome');
    await b.frame('welcome');
    const shopKeys = root.forApp('shop');
    const idB = await publish(shopKeys, 'same');
    const idA = await publish(root, 'same');
    await b.until(() => b.notifications('inbox').length === 1, 'shop notification');
    await a.until(() => a.notifications('inbox').length === 1, 'default notification');
    expect(b.notifications('inbox').map((f) => f.id)).toEqual([idB]);
    expect(a.notifications('inbox').map((f) => f.id)).toEqual([idA]);
    expect(await cmd.hkeys(shopKeys.presence('same'))).toEqual(['node-t']);
    expect(await cmd.exists('herald:a:shop:{d:same}:inbox', 'herald:{d:same}:inbox')).toBe(2);
    // An HTTP ack with the shop token moves shop's cursor only.
    const ack = await fetch(`http://127.0.0.1:${port}/v1/acks`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await token('shop', 'same', SHOP_SECRET)}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ cursors: { inbox: 1 } }),
    });
    expect(ack.status).toBe(204);
    expect(await cmd.hget(shopKeys.cursors('same'), 'inbox')).toBe('1');
    expect(await cmd.hget(root.cursors('same'), 'inbox')).toBeNull();
    // A subscription by the backend (sub doorbell) of the same device in one app only.
    await cmd.publish(
      shopKeys.nodeChannel('node-t'),
      encodeDoorbell({ k: 'sub', device: 'same', topic: 'news' }),
    );
    await b.until(() => b.frames.some((f) => f.type === 'subscribed'), 'subscribed in shop');
    b.send({ type: 'ping' });
    await b.frame('pong');
    a.send({ type: 'ping' });
    await a.frame('pong');
    expect(a.frames.some((f) => f.type === 'subscribed')).toBe(false);
    a.close();
    b.close();
  });

  it("closes a hello over the app's connection cap with 4014 and refuses SSE with 429", async () => {
    const held = [];
    for (const d of ['cap-1', 'cap-2']) {
      const p = await connect(await token('shop', d, SHOP_SECRET));
      await p.frame('welcome');
      held.push(p);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^herald_app_connections\{tenant="shop"[^}]*\} 2$/m);
    const over = await connect(await token('shop', 'cap-3', SHOP_SECRET));
    const c = await over.waitClose();
    expect(c.code).toBe(4014);
    expect(c.reason).toMatch(/app shop is at its connection limit \(2\)/);
    const sse = await fetch(`http://127.0.0.1:${port}/v1/sse`, {
      headers: { authorization: `Bearer ${await token('shop', 'cap-4', SHOP_SECRET)}` },
    });
    expect(sse.status).toBe(429);
    expect(sse.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await sse.json()).toMatchObject({ code: 'HERALD_RATE_LIMITED' });
    const poll = await fetch(`http://127.0.0.1:${port}/v1/poll?wait=0`, {
      headers: { authorization: `Bearer ${await token('shop', 'cap-5', SHOP_SECRET)}` },
    });
    expect(poll.status).toBe(429);
    expect(await poll.json()).toMatchObject({ code: 'HERALD_RATE_LIMITED' });
    // Another app is not counted against shop's cap.
    const other = await connect(await token(undefined, 'cap-3'));
    await other.frame('welcome');
    for (const p of [...held, other]) p.close();
    await held[0]!.waitClose();
  });

  it("checks a browser's origin against its token's app", async () => {
    const p = await connect(await token('shop', 'o-1', SHOP_SECRET), 'https://evil.example');
    expect(await p.waitClose()).toMatchObject({ code: 4001, reason: expect.stringMatching(/origin/) });
    const ok = await connect(await token('shop', 'o-1', SHOP_SECRET), 'https://shop.example');
    await ok.frame('welcome');
    const def = await connect(await token(undefined, 'o-1'), 'https://evil.example');
    await def.frame('welcome');
    ok.close();
    def.close();
  });

  it("reload: an added app works at once, a removed app's sessions close, others stay", async () => {
    const stay = await connect(await token(undefined, 'r-1'));
    const gone = await connect(await token('shop', 'r-1', SHOP_SECRET));
    await stay.frame('welcome');
    await gone.frame('welcome');
    await node.reloadApps([APPS[0]!, { id: 'blog', tokens: { secret: BLOG_SECRET } }]);
    expect(await gone.waitClose()).toMatchObject({ code: 4001, reason: 'app shop removed' });
    const blog = await connect(await token('blog', 'r-1', BLOG_SECRET));
    await blog.frame('welcome');
    const idBlog = await publish(root.forApp('blog'), 'r-1');
    await blog.until(() => blog.notifications('inbox').some((f) => f.id === idBlog), 'blog notification');
    const again = await connect(await token('shop', 'r-2', SHOP_SECRET));
    expect((await again.waitClose()).code).toBe(4001);
    stay.send({ type: 'ping' });
    await stay.frame('pong');
    expect(stay.closed).toBeUndefined();
    stay.close();
    blog.close();
  });
});
