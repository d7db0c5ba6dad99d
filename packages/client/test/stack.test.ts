// The SDK against a real stack (@herald/stack: Redis, API, worker, two push nodes behind nginx
// stream): one device per transport, `auto` behind a proxy that refuses WebSocket upgrades, an
// SSE device whose node is killed mid-stream, and the browser bundle in Debian's Chromium
// (playwright-core drives /usr/bin/chromium; nothing is downloaded) on a page of another origin.
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NotificationFrame } from '@herald/protocol';
import { type Stack, startStack } from '@herald/stack';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleBrowser } from '../scripts/bundle.mjs';
import { HeraldClient, type HeraldClientOptions, type HeraldEvents, type Transport } from '../src/client.js';
import type { StorageLike } from '../src/cursors.js';
import { Recorder } from './fake-node.js';

const API_KEY = 'client-stack-api-key-0123456789';
const SECRET = 'client-stack-token-secret-0123456789';

let stack: Stack;
let dir: string;
let proxy: Server;
/** `ws://` URL of the proxy that answers WebSocket upgrades with 403 and passes HTTP through to nginx. */
let proxyUrl: string;
/** A page server on its own port (another origin than the nodes): `/` and `/herald.js`. */
let pages: Server;
let pageUrl: string;
let browser: BrowserContext | undefined;
let profile: string | undefined;
const clients: HeraldClient[] = [];

/** A device token (HS256 JWT, as @herald/token mints it), signed here to keep the SDK's devDependencies as they are. */
function token(device: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: device, uid: `u-${device}`, iat: now, exp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${stack.apiUrl}${p}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function publish(to: unknown, data: unknown): Promise<string> {
  const r = await api('POST', '/v1/notifications', { to, data });
  expect(r.status, JSON.stringify(r.json)).toBe(202);
  return (r.json as { id: string }).id;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-client-stack-'));
  stack = await startStack({
    nodes: 2,
    dataDir: path.join(dir, 'data'),
    logDir: path.join(process.env.HERALD_TEST_LOGS ?? dir, 'logs'),
    apiKeys: [API_KEY],
    tokenSecret: SECRET,
    logLevel: 'warn',
    // Reconnect hints of a draining node spread over 1 s (default 10 s): the drain test stays short.
    env: { HERALD_FLUSH_MS: '50', HERALD_DRAIN_MS: '1000' },
  });
  const target = Number(new URL(stack.wsUrl).port);
  proxy = createServer((req, res) => {
    const up = request(
      {
        host: '127.0.0.1',
        port: target,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: false,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  proxy.on('upgrade', (_req, socket) =>
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
  );
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `ws://127.0.0.1:${(proxy.address() as AddressInfo).port}/v1/ws`;

  const bundle = await bundleBrowser({ write: false });
  pages = createServer((req, res) => {
    if (req.url === '/herald.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
  });
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
  pageUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}/`;
}, 60_000);

/** The page: the browser bundle as a module; `start()` connects a client and records what it sees. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>sdk</title><script type="module">
import { HeraldClient } from '/herald.js';
window.start = (url, token, transport) => {
  const client = new HeraldClient({ url, token, transport, backoff: { initialMs: 50, maxMs: 500 } });
  window.client = client;
  window.got = [];
  window.errors = [];
  client.on('notification', (n) => window.got.push([n.stream, n.seq]));
  client.on('error', (e) => window.errors.push(e.code + ': ' + e.message));
  return client.connect().then(() => client.transport);
};
window.ready = true;
</script>`;

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  if (profile) rmSync(profile, { recursive: true, force: true });
  pages?.closeAllConnections();
  await new Promise((r) => (pages ? pages.close(r) : r(undefined)));
  await Promise.all(clients.splice(0).map((c) => c.close()));
  proxy?.closeAllConnections();
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

function memory(): StorageLike {
  const map = new Map<string, string>();
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v) };
}

function device(
  name: string,
  opts: Partial<HeraldClientOptions>,
): { client: HeraldClient; rec: Recorder<HeraldEvents> } {
  const client = new HeraldClient({
    url: stack.wsUrl,
    token: () => token(name),
    backoff: { initialMs: 50, maxMs: 500 },
    transportMemory: memory(),
    lifecycle: false,
    ...opts,
  });
  clients.push(client);
  return { client, rec: new Recorder(client, ['notification', 'welcome', 'error', 'disconnect']) };
}

/** Per stream, the seqs received in order. */
function byStream(ns: NotificationFrame[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const n of ns) out[n.stream] = [...(out[n.stream] ?? []), n.seq];
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('the SDK on a real stack, every transport', () => {
  it('one device per transport, same topic and own inbox: every publish once, in order, acked', async () => {
    const topic = 'stack.mixed';
    const transports: Transport[] = ['websocket', 'sse', 'poll'];
    const devs = transports.map((t) => ({
      t,
      name: `dev-${t}`,
      ...device(`dev-${t}`, { transport: t, topics: [topic] }),
    }));
    await Promise.all(devs.map((d) => d.client.connect()));
    for (const d of devs) expect(d.client.transport).toBe(d.t);
    // The topic subscription is made (subscribe frame, or the topics parameter) before publishing.
    for (const d of devs) await d.rec.wait('welcome');
    const N = 30;
    let last = '';
    for (let i = 1; i <= N; i++) {
      await publish({ topic }, { i });
      last = await publish({ devices: devs.map((d) => d.name) }, { i });
    }
    for (const d of devs) {
      await d.rec.nth('notification', 2 * N, 15_000);
      expect(byStream(d.rec.of('notification')), d.t).toEqual({
        inbox: range(1, N),
        [`topic:${topic}`]: range(1, N),
      });
      expect(d.rec.of('error'), d.t).toEqual([]);
    }
    // Acks arrive for all three (HTTP acks for SSE and long-poll): the last publish counts 3 acked.
    let counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      counts = ((await api('GET', `/v1/notifications/${last}`)).json as { counts: Record<string, number> })
        .counts;
      if (counts.acked === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(counts).toMatchObject({ targets: 3, delivered: 3, acked: 3 });
  }, 30_000);

  it("'auto' behind a proxy that refuses WebSocket upgrades ends up on SSE and gets everything", async () => {
    const { client, rec } = device('dev-auto', { url: proxyUrl });
    await client.connect();
    expect(client.transport).toBe('sse');
    expect(rec.of('disconnect')[0]?.code).toBe(1006); // the refused upgrade
    for (let i = 1; i <= 10; i++) await publish({ devices: ['dev-auto'] }, { i });
    await rec.nth('notification', 10, 10_000);
    expect(byStream(rec.of('notification'))).toEqual({ inbox: range(1, 10) });
  }, 20_000);

  it('an SSE device whose node is killed resumes on the other node: none lost, none twice', async () => {
    const { client, rec } = device('dev-kill', { transport: 'sse' });
    await client.connect();
    for (let i = 1; i <= 5; i++) await publish({ devices: ['dev-kill'] }, { i });
    await rec.nth('notification', 5, 10_000);
    const holder = stack.nodes.find((n) => n.name === rec.of('welcome')[0]!.node);
    expect(holder, `node ${rec.of('welcome')[0]!.node}`).toBeDefined();
    await holder!.kill9();
    // Published while the device is between nodes: stored in Redis, replayed on resume.
    for (let i = 6; i <= 15; i++) await publish({ devices: ['dev-kill'] }, { i });
    await rec.nth('welcome', 2, 15_000);
    expect(rec.of('welcome')[1]!.node).not.toBe(holder!.name);
    await rec.nth('notification', 15, 10_000);
    expect(byStream(rec.of('notification'))).toEqual({ inbox: range(1, 15) });
    await holder!.restart();
  }, 40_000);

  it('a draining node sends its SSE and long-poll devices to the other node: none lost, none twice', async () => {
    const sse = device('dev-drain-sse', { transport: 'sse' });
    const poll = device('dev-drain-poll', { transport: 'poll' });
    await Promise.all([sse.client.connect(), poll.client.connect()]);
    const holder = sse.rec.of('welcome')[0]!.node;
    const names = ['dev-drain-sse', 'dev-drain-poll'];
    for (let i = 1; i <= 5; i++) await publish({ devices: names }, { i });
    await Promise.all([sse.rec.nth('notification', 5, 10_000), poll.rec.nth('notification', 5, 10_000)]);
    const drained = (rec: Recorder<HeraldEvents>) =>
      rec.of('disconnect').filter((d) => d.code === 4012).length;
    await stack.removeNode(holder); // out of nginx, then SIGTERM: it drains
    for (let i = 6; i <= 10; i++) await publish({ devices: names }, { i });
    await sse.rec.nth('welcome', 2, 15_000);
    expect(sse.rec.of('welcome')[1]!.node).not.toBe(holder);
    // The SSE stream got `reconnect` (close 4012 on the client side), not an error.
    expect(drained(sse.rec)).toBe(1);
    for (const d of [sse, poll]) {
      await d.rec.nth('notification', 10, 10_000);
      expect(byStream(d.rec.of('notification'))).toEqual({ inbox: range(1, 10) });
      expect(d.rec.of('error')).toEqual([]);
    }
    await stack.addNode();
  }, 40_000);
});

describe('the browser bundle in Chromium, on a page of another origin', () => {
  async function page() {
    if (!browser) {
      profile = mkdtempSync(path.join(tmpdir(), 'herald-client-chromium-'));
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--no-first-run',
          '--disable-background-networking',
        ],
        timeout: 30_000,
      });
    }
    const p = await browser.newPage();
    p.setDefaultTimeout(15_000);
    await p.goto(pageUrl);
    await p.waitForFunction(() => (globalThis as unknown as { ready?: boolean }).ready === true);
    return p;
  }

  type Win = {
    start(u: string, t: string, tr: string): Promise<string>;
    got: [string, number][];
    errors: string[];
  };

  for (const [name, transport, via] of [
    ["'auto' behind the proxy that refuses upgrades: SSE", 'auto', 'proxy'],
    ['long-poll', 'poll', 'nginx'],
  ] as const)
    it(`${name}: receives every publish once, in order, and acks over HTTP (CORS)`, async () => {
      const dev = `browser-${transport}`;
      const p = await page();
      const url = via === 'proxy' ? proxyUrl : stack.wsUrl;
      const got = await p.evaluate(([u, t, tr]) => (globalThis as unknown as Win).start(u, t, tr), [
        url,
        token(dev),
        transport,
      ] as const);
      expect(got).toBe(transport === 'auto' ? 'sse' : 'poll');
      let last = '';
      for (let i = 1; i <= 10; i++) last = await publish({ devices: [dev] }, { i });
      await p.waitForFunction(() => (globalThis as unknown as Win).got.length >= 10);
      const w = await p.evaluate(() => {
        const g = globalThis as unknown as Win;
        return { got: g.got, errors: g.errors };
      });
      expect(w.got).toEqual(range(1, 10).map((n) => ['inbox', n]));
      // With 'auto' the refused upgrade is no error event: only a disconnect before the fallback.
      expect(w.errors).toEqual([]);
      let acked = 0;
      for (let i = 0; i < 100 && acked < 1; i++) {
        acked = ((await api('GET', `/v1/notifications/${last}`)).json as { counts: { acked: number } }).counts
          .acked;
        if (acked < 1) await new Promise((r) => setTimeout(r, 100));
      }
      expect(acked).toBe(1);
      await p.close();
    }, 30_000);
});
