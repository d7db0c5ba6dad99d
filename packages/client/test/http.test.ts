// The HTTP transports against a scripted node (test/fake-http-node.ts): SSE, long-poll, HTTP
// acks, and `auto` falling back when a proxy refuses the WebSocket upgrade.
// Over 400 lines: one scenario per behaviour (as client.test.ts for WebSocket), sharing one fake
// node and its helpers; split by transport, each file would repeat the setup.
import { encodeCursors, type NotificationFrame } from '@herald/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeraldClient, type HeraldClientOptions, type HeraldEvents } from '../src/client.js';
import { MemoryCursorStorage, type StorageLike } from '../src/cursors.js';
import { FakeHttpNode } from './fake-http-node.js';
import { Recorder } from './fake-node.js';

let node: FakeHttpNode;
const clients: HeraldClient[] = [];

beforeEach(async () => {
  node = await FakeHttpNode.start();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await node.stop();
});

const EVENTS: (keyof HeraldEvents)[] = [
  'notification',
  'state',
  'welcome',
  'gap',
  'subscribed',
  'unsubscribed',
  'error',
  'disconnect',
  'retry',
];

function makeClient(opts: Partial<HeraldClientOptions> = {}): {
  client: HeraldClient;
  rec: Recorder<HeraldEvents>;
} {
  const client = new HeraldClient({
    url: node.url,
    token: 'tok',
    backoff: { initialMs: 20, maxMs: 100 },
    ackDelayMs: 5,
    transportMemory: memory(),
    ...opts,
  });
  clients.push(client);
  return { client, rec: new Recorder(client, EVENTS) };
}

function memory(): StorageLike & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v) };
}

const seqs = (ns: NotificationFrame[]): number[] => ns.map((n) => n.seq);
const ackedUpTo = (stream: string): number =>
  Math.max(0, ...node.acks.map((a) => (a.body as { cursors: Record<string, number> }).cursors[stream] ?? 0));

describe('SSE transport', () => {
  it('streams with the token, cursors and topics in the query, drops duplicates, acks over HTTP', async () => {
    const storage = new MemoryCursorStorage({ inbox: 4, 'topic:news': 9 });
    const { client, rec } = makeClient({ transport: 'sse', storage, topics: ['news'] });
    const connected = client.connect();
    const s = await node.nextStream();
    expect(s.q).toMatchObject({ token: null, topics: ['news'], cursors: { inbox: 4, 'topic:news': 9 } });
    expect(s.req.headers.authorization).toBe('Bearer tok');
    s.welcome({ inbox: 4, broadcast: 2, 'topic:news': 9 });
    await connected;
    expect(client.state).toBe('open');
    expect(client.transport).toBe('sse');
    expect(rec.of('welcome')[0]?.node).toBe('fake-http');
    s.notify('inbox', 5);
    s.notify('inbox', 5); // a duplicate
    s.notify('topic:news', 10);
    s.notify('inbox', 3); // behind the cursor
    s.notify('inbox', 6);
    await rec.wait('notification', (n) => n.seq === 6);
    expect(rec.of('notification').map((n) => n.id)).toEqual(['inbox-5', 'topic:news-10', 'inbox-6']);
    await node.until(() => ackedUpTo('inbox') === 6 && ackedUpTo('topic:news') === 10, 'acks up to 6 and 10');
    expect(node.acks[0]!.authorization).toBe('Bearer tok');
    expect(client.cursors()).toEqual({ inbox: 6, broadcast: 2, 'topic:news': 10 });
    expect(upgrades()).toBe(0);
  });

  it("keeps the cursors in the URL within the nodes' 8 KiB, own streams first", async () => {
    const many: Record<string, number> = { inbox: 7 };
    for (let i = 0; i < 255; i++) many[`topic:${'t'.repeat(100)}${i}`] = i + 1;
    const { client } = makeClient({ transport: 'sse', storage: new MemoryCursorStorage(many) });
    void client.connect();
    const s = await node.nextStream();
    const enc = new URL(s.req.url!, 'http://x').searchParams.get('cursors')!;
    expect(enc.length).toBeLessThanOrEqual(8192);
    const kept = Object.keys(s.q.cursors!);
    expect(kept.length).toBeGreaterThan(40);
    expect(kept.length).toBeLessThan(256);
    expect(s.q.cursors!.inbox).toBe(7);
    s.welcome({ inbox: 7 });
  });

  it('resumes from the last processed notification after the stream drops', async () => {
    const { client, rec } = makeClient({ transport: 'sse' });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome({ inbox: 0 });
    for (let i = 1; i <= 3; i++) s1.notify('inbox', i);
    await rec.wait('notification', (n) => n.seq === 3);
    s1.res.destroy(); // the node dies mid-stream
    const s2 = await node.nextStream();
    expect(s2.q.cursors).toEqual({ inbox: 3 });
    s2.welcome({ inbox: 3 });
    s2.notify('inbox', 3); // replayed by an imprecise node: dropped
    s2.notify('inbox', 4);
    await rec.wait('notification', (n) => n.seq === 4);
    expect(seqs(rec.of('notification'))).toEqual([1, 2, 3, 4]);
    expect(rec.of('disconnect')).toHaveLength(1);
    expect(rec.of('retry')[0]).toMatchObject({ reason: 'backoff' });
    expect(rec.of('state')).toEqual(['connecting', 'open', 'reconnecting', 'open']);
  });

  it('in a page, sends the token in the query (no header: no CORS preflight)', async () => {
    const g = globalThis as { document?: unknown };
    g.document = {};
    try {
      const { client } = makeClient({ transport: 'sse', lifecycle: false });
      const connected = client.connect();
      const s = await node.nextStream();
      expect(s.q.token).toBe('tok');
      expect(s.req.headers.authorization).toBeUndefined();
      s.welcome();
      await connected;
    } finally {
      delete g.document;
    }
  });

  it('a tab becoming visible does not drop a quiet stream (no ping can reach it)', async () => {
    const lifecycle = {
      window: new EventTarget(),
      document: Object.assign(new EventTarget(), { visibilityState: 'visible' }),
    };
    const { client, rec } = makeClient({ transport: 'sse', lifecycle });
    void client.connect();
    (await node.nextStream()).welcome();
    await rec.wait('welcome');
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    try {
      vi.advanceTimersByTime(4000); // quiet for longer than the wake-up probe's 3 s
      lifecycle.document.dispatchEvent(new Event('visibilitychange'));
      vi.advanceTimersByTime(4000); // a WebSocket would be probed and dropped by now
      expect(rec.of('disconnect')).toEqual([]);
      expect(client.state).toBe('open');
    } finally {
      vi.useRealTimers();
    }
  });

  it('counts heartbeat comments as traffic, and drops a silent stream', async () => {
    const { client, rec } = makeClient({ transport: 'sse', pingIdleMs: 150, pongTimeoutMs: 100 });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome();
    await rec.wait('welcome');
    const beats = setInterval(() => s1.raw(': hb\n'), 50);
    try {
      // Three idle-plus-timeout windows with only heartbeats: still the same stream.
      await new Promise((r) => setTimeout(r, 750));
      expect(rec.of('disconnect')).toEqual([]);
    } finally {
      clearInterval(beats);
    }
    const d = await rec.wait('disconnect');
    expect(d.reason).toMatch(/no answer to ping within 100 ms/);
    await s1.waitClosed();
    (await node.nextStream()).welcome();
    await rec.nth('welcome', 2);
  });

  it('a 401 before the stream is the token refused: fatal with a static token', async () => {
    const { client, rec } = makeClient({ transport: 'sse' });
    const connected = client.connect();
    (await node.nextStream()).refuse(401, 'HERALD_TOKEN_EXPIRED', 'token expired');
    await expect(connected).rejects.toMatchObject({ code: 'token_expired', fatal: true, closeCode: 4003 });
    expect(rec.of('disconnect')[0]!.reason).toBe('HTTP 401 HERALD_TOKEN_EXPIRED: token expired');
  });

  it('a 403 with a Herald code is a refused request (bad_frame: 4000), not a transport failure', async () => {
    const { client } = makeClient({ topics: ['secret'], transportMemory: memory() });
    node.refuseUpgrades = 403;
    const connected = client.connect();
    (await node.nextStream()).refuse(403, 'HERALD_TOPIC_FORBIDDEN', 'the token does not allow secret');
    await expect(connected).rejects.toMatchObject({
      code: 'bad_frame',
      fatal: true,
      closeCode: 4000,
      message: expect.stringMatching(/HTTP 403 HERALD_TOPIC_FORBIDDEN: the token does not allow secret/),
    });
    expect(node.polls).toHaveLength(0);
  });

  it('an error event ends the stream with its close code (4001: fetch a new token)', async () => {
    let n = 0;
    const { client, rec } = makeClient({ transport: 'sse', token: () => `tok-${++n}` });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome();
    await rec.wait('welcome');
    s1.event('error', { code: 4001, reason: 'signature verification failed' });
    const s2 = await node.nextStream();
    expect(s2.req.headers.authorization).toBe('Bearer tok-2');
    expect(rec.of('disconnect')[0]).toEqual({ code: 4001, reason: 'signature verification failed' });
    await s1.waitClosed();
  });

  it('on a refresh event gets a fresh token and streams again without a disconnect', async () => {
    let n = 0;
    const { client, rec } = makeClient({ transport: 'sse', token: () => `tok-${++n}` });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome({ inbox: 0 });
    s1.notify('inbox', 1);
    await rec.wait('notification');
    s1.event('refresh', { exp: Math.floor(Date.now() / 1000) + 30 });
    const s2 = await node.nextStream();
    expect(s2.q).toMatchObject({ cursors: { inbox: 1 } });
    expect(s2.req.headers.authorization).toBe('Bearer tok-2');
    s2.welcome({ inbox: 1 });
    s2.notify('inbox', 2);
    await rec.wait('notification', (x) => x.seq === 2);
    await s1.waitClosed();
    expect(rec.of('disconnect')).toEqual([]);
    expect(rec.of('welcome')).toHaveLength(1);
    await node.until(() => ackedUpTo('inbox') === 2, 'ack 2');
    expect(node.acks.at(-1)!.authorization).toBe('Bearer tok-2');
  });

  it('subscribe and unsubscribe while streaming: the stream is made again, events as on WebSocket', async () => {
    const { client, rec } = makeClient({ transport: 'sse' });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome({ inbox: 0 });
    await rec.wait('welcome');
    client.subscribe('news');
    client.subscribe('sport');
    const s2 = await node.nextStream();
    expect(s2.q.topics).toEqual(['news', 'sport']);
    s2.welcome({ inbox: 0, 'topic:news': 7, 'topic:sport': 0 });
    expect(await rec.nth('subscribed', 2)).toEqual({ type: 'subscribed', topic: 'sport', cursor: 0 });
    expect(rec.of('subscribed')[0]).toEqual({ type: 'subscribed', topic: 'news', cursor: 7 });
    expect(client.cursors()['topic:news']).toBe(7);
    client.unsubscribe('news');
    const s3 = await node.nextStream();
    expect(s3.q.topics).toEqual(['sport']);
    s3.welcome({ inbox: 0, 'topic:sport': 0 });
    expect(await rec.wait('unsubscribed')).toEqual({ type: 'unsubscribed', topic: 'news' });
    expect(client.cursors()['topic:news']).toBeUndefined();
    expect(rec.of('disconnect')).toEqual([]);
  });

  it('a reconnect event: goes after its delay, without counting a failure', async () => {
    const { client, rec } = makeClient({
      transport: 'sse',
      backoff: { initialMs: 20, maxMs: 100, random: () => 0 },
    });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome();
    await rec.wait('welcome');
    s1.event('reconnect', { type: 'reconnect', delayMs: 300, reason: 'draining' });
    expect(await rec.wait('retry')).toEqual({ attempt: 0, delayMs: 300, reason: 'server' });
    const s2 = await node.nextStream();
    s2.welcome();
    await rec.nth('welcome', 2);
  });

  it('a stream the node ends after a retry: line comes back after that delay', async () => {
    const { client, rec } = makeClient({
      transport: 'sse',
      backoff: { initialMs: 20, maxMs: 100, random: () => 0 },
    });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome({ inbox: 0 }, 250);
    await rec.wait('welcome');
    s1.res.end();
    expect(await rec.wait('retry')).toMatchObject({ delayMs: 250, reason: 'server' });
    (await node.nextStream()).welcome();
    await rec.nth('welcome', 2);
  });
});

describe('HTTP acks', () => {
  it('coalesce: at most one request in flight, the next carries the highest seq per stream', async () => {
    const { client, rec } = makeClient({ transport: 'sse', ackDelayMs: 1 });
    void client.connect();
    const s = await node.nextStream();
    s.welcome({ inbox: 0, 'topic:a': 0 });
    node.holdAcks = true;
    s.notify('inbox', 1);
    await node.until(() => node.acks.length === 1, 'the first ack');
    for (let i = 2; i <= 50; i++) s.notify('inbox', i);
    for (let i = 1; i <= 5; i++) s.notify('topic:a', i);
    await rec.nth('notification', 55);
    await new Promise((r) => setTimeout(r, 50)); // flush timers ran; the POST is still held
    expect(node.acks).toHaveLength(1);
    node.releaseAcks();
    await node.until(() => node.acks.length === 2, 'the second ack');
    expect(node.acks.map((a) => a.body)).toEqual([
      { cursors: { inbox: 1 } },
      { cursors: { inbox: 50, 'topic:a': 5 } },
    ]);
    expect(node.maxAcksInFlight).toBe(1);
  });

  it('a refused ack is an error event (not retried); a failed one is retried', async () => {
    const { client, rec } = makeClient({ transport: 'sse' });
    void client.connect();
    const s = await node.nextStream();
    s.welcome({ inbox: 0 });
    node.refuseAcks = [400, 'HERALD_BAD_REQUEST'];
    s.notify('inbox', 1);
    const err = await rec.wait('error');
    expect(err).toMatchObject({ code: 'bad_request', fatal: false });
    expect(err.message).toBe("ack refused: cursors.inbox: ack 9 is past the stream's last entry 4");
    expect(node.acks).toHaveLength(1);
    node.refuseAcks = [503, 'HERALD_REDIS_UNAVAILABLE'];
    s.notify('inbox', 2);
    await node.until(() => node.acks.length === 2, 'the second ack');
    node.refuseAcks = undefined;
    // Retried after 1 s, with the same cursors.
    await node.until(() => node.acks.length === 3, 'the retried ack', 3000);
    expect(node.acks.map((a) => a.body)).toEqual([
      { cursors: { inbox: 1 } },
      { cursors: { inbox: 2 } },
      { cursors: { inbox: 2 } },
    ]);
    expect(client.state).toBe('open');
  });

  it('pending acks are sent by close()', async () => {
    const { client, rec } = makeClient({ transport: 'sse', ackDelayMs: 10_000 });
    void client.connect();
    const s = await node.nextStream();
    s.welcome({ inbox: 0 });
    s.notify('inbox', 1);
    await rec.wait('notification');
    await client.close();
    expect(node.acks.map((a) => a.body)).toEqual([{ cursors: { inbox: 1 } }]);
  });
});

describe('long-poll transport', () => {
  it('polls in a loop from the returned cursors, with the same events and acks', async () => {
    const { client, rec } = makeClient({
      transport: 'poll',
      pollWaitS: 7,
      storage: new MemoryCursorStorage({ inbox: 2 }),
    });
    const connected = client.connect();
    const p1 = await node.nextPoll();
    expect(p1.q).toMatchObject({ wait: '0', cursors: { inbox: 2 } });
    expect(p1.req.headers.authorization).toBe('Bearer tok');
    p1.answer(encodeCursors({ inbox: 2, broadcast: 0 }));
    await connected;
    expect(client.transport).toBe('poll');
    expect(rec.of('welcome')[0]!.streams).toEqual({ inbox: { cursor: 2 }, broadcast: { cursor: 0 } });
    const p2 = await node.nextPoll();
    expect(p2.q).toMatchObject({ wait: '7', cursors: { inbox: 2, broadcast: 0 } });
    const n = (seq: number) => ({
      type: 'notification',
      stream: 'inbox',
      seq,
      id: `i${seq}`,
      ts: 1,
      data: null,
    });
    p2.answer(encodeCursors({ inbox: 4, broadcast: 0 }), [n(2), n(3), n(4)]);
    const p3 = await node.nextPoll();
    expect(p3.q.cursors).toEqual({ inbox: 4, broadcast: 0 });
    p3.answer(encodeCursors({ inbox: 5, broadcast: 0 }), [
      { type: 'gap', stream: 'broadcast', after: 0, next: 3, reason: 'trimmed' },
      n(5),
    ]);
    await rec.wait('notification', (x) => x.seq === 5);
    expect(seqs(rec.of('notification'))).toEqual([3, 4, 5]);
    expect(rec.of('gap')).toHaveLength(1);
    await node.until(() => ackedUpTo('inbox') === 5 && ackedUpTo('broadcast') === 2, 'acks');
    const p4 = await node.nextPoll();
    p4.answer(encodeCursors({ inbox: 5, broadcast: 2 }), [
      { type: 'reconnect', delayMs: 50, reason: 'draining' },
    ]);
    expect(await rec.wait('retry')).toMatchObject({ reason: 'server' });
    const p5 = await node.nextPoll();
    expect(p5.q).toMatchObject({ wait: '0', cursors: { inbox: 5, broadcast: 2 } });
  });

  it('subscribe cuts the held poll short and reports the topic cursor', async () => {
    const { client, rec } = makeClient({ transport: 'poll' });
    void client.connect();
    (await node.nextPoll()).answer(encodeCursors({ inbox: 0 }));
    await rec.wait('welcome');
    const held = await node.nextPoll();
    client.subscribe('news');
    const p = await node.nextPoll();
    await node.until(() => held.closed, 'the held poll to be cut');
    expect(p.q).toMatchObject({ topics: ['news'], wait: '0' });
    p.answer(encodeCursors({ inbox: 0, 'topic:news': 12 }));
    expect(await rec.wait('subscribed')).toEqual({ type: 'subscribed', topic: 'news', cursor: 12 });
  });

  it("a node's 503 is retried with backoff (not a transport failure); a proxy's 502 is a transport failure", async () => {
    const { client, rec } = makeClient({ transport: 'poll' });
    void client.connect();
    (await node.nextPoll()).res
      .writeHead(503, { 'content-type': 'application/json' })
      .end(JSON.stringify({ code: 'HERALD_NODE_BUSY', message: 'node at capacity' }));
    (await node.nextPoll()).res
      .writeHead(502, { 'content-type': 'text/html' })
      .end('<html>bad gateway</html>');
    (await node.nextPoll()).answer(encodeCursors({ inbox: 0 }));
    await rec.wait('welcome');
    expect(rec.of('disconnect')).toEqual([
      { code: 4013, reason: 'HTTP 503 HERALD_NODE_BUSY: node at capacity' },
      { code: 1006, reason: 'HTTP 502' },
    ]);
    expect(rec.of('retry').map((r) => r.reason)).toEqual(['backoff', 'backoff']);
  });

  it('a 401 on a poll is the token refused', async () => {
    const { client } = makeClient({ transport: 'poll' });
    const connected = client.connect();
    (await node.nextPoll()).res
      .writeHead(401, { 'content-type': 'application/json' })
      .end(JSON.stringify({ code: 'HERALD_UNAUTHORIZED', message: 'bad token' }));
    await expect(connected).rejects.toMatchObject({ code: 'unauthorized', closeCode: 4001 });
  });
});

function upgrades(): number {
  return node.upgrades;
}

describe("transport 'auto'", () => {
  it('uses WebSocket when the upgrade works, writing nothing to the memory (its first choice anyway)', async () => {
    const mem = memory();
    const { client } = makeClient({ transportMemory: mem });
    const connected = client.connect();
    await (await node.nextSocket()).welcome();
    await connected;
    expect(client.transport).toBe('websocket');
    expect(mem.map.size).toBe(0);
  });

  it('falls back to SSE when a proxy answers the upgrade with 403, and remembers it', async () => {
    node.refuseUpgrades = 403;
    const mem = memory();
    const { client, rec } = makeClient({ transportMemory: mem });
    const connected = client.connect();
    const s = await node.nextStream();
    s.welcome({ inbox: 0 });
    await connected;
    expect(client.transport).toBe('sse');
    expect(upgrades()).toBe(1);
    expect(rec.of('disconnect')[0]!.code).toBe(1006);
    s.notify('inbox', 1);
    await rec.wait('notification');
    const saved = JSON.parse(mem.map.get(`herald:transport:${node.url}`)!) as { t: string; until: number };
    expect(saved.t).toBe('sse');
    expect(saved.until - Date.now()).toBeGreaterThan(590_000);
    await client.close();

    // A new client with the same memory goes straight to SSE: no upgrade tried.
    const again = makeClient({ transportMemory: mem });
    const c2 = again.client.connect();
    (await node.nextStream()).welcome({ inbox: 1 });
    await c2;
    expect(upgrades()).toBe(1);
    expect(again.rec.of('disconnect')).toEqual([]);
  });

  it('falls back to long-poll when SSE is blocked too, then tries WebSocket again once the memory is stale', async () => {
    node.refuseUpgrades = 400;
    node.sseBlocked = 502;
    const mem = memory();
    const { client } = makeClient({ transportMemory: mem, transportMemoryMs: 300 });
    const connected = client.connect();
    (await node.nextPoll()).answer(encodeCursors({ inbox: 0 }));
    await connected;
    expect(client.transport).toBe('poll');
    expect(upgrades()).toBe(1);
    await client.close();

    // Memory still fresh: poll first.
    const second = makeClient({ transportMemory: mem, transportMemoryMs: 300 });
    const c2 = second.client.connect();
    (await node.nextPoll()).answer(encodeCursors({ inbox: 0 }));
    await c2;
    expect(upgrades()).toBe(1);
    await second.client.close();

    // Stale: WebSocket is tried again (and works now: the proxy went away).
    await new Promise((r) => setTimeout(r, 350));
    node.refuseUpgrades = undefined;
    const third = makeClient({ transportMemory: mem, transportMemoryMs: 300 });
    const c3 = third.client.connect();
    await (await node.nextSocket()).welcome();
    await c3;
    expect(third.client.transport).toBe('websocket');
  });

  it('a session on SSE lost after its memory went stale tries WebSocket first again', async () => {
    node.refuseUpgrades = 403;
    const { client, rec } = makeClient({ transportMemoryMs: 200 });
    void client.connect();
    const s1 = await node.nextStream();
    s1.welcome();
    await rec.wait('welcome');
    expect(upgrades()).toBe(1);
    s1.res.destroy(); // still fresh: back to SSE at once
    (await node.nextStream()).welcome();
    await rec.nth('welcome', 2);
    expect(upgrades()).toBe(1);
    await new Promise((r) => setTimeout(r, 250));
    node.refuseUpgrades = undefined;
    node.streams[1]!.res.destroy(); // stale: WebSocket first, and it gets through now
    await (await node.nextSocket()).welcome();
    await rec.nth('welcome', 3);
    expect(client.transport).toBe('websocket');
    expect(upgrades()).toBe(2);
  });

  it('an upgrade nobody answers: falls back on the first connection, not once a session was open', async () => {
    node.stallUpgrades = true;
    const first = makeClient({ welcomeTimeoutMs: 150 });
    const c1 = first.client.connect();
    (await node.nextStream()).welcome(); // a proxy that holds upgrades: SSE after the timeout
    await c1;
    expect(first.client.transport).toBe('sse');
    await first.client.close();

    node.stallUpgrades = false;
    const { client, rec } = makeClient({ welcomeTimeoutMs: 150 });
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    await rec.wait('welcome');
    // The node stalls (SIGSTOP): its socket is dropped, and the retries get no answer at all.
    node.stallUpgrades = true;
    const before = node.upgrades;
    s1.ws.terminate();
    await node.until(() => node.upgrades >= before + 3, 'three unanswered upgrades', 5000);
    expect(node.streams).toHaveLength(1); // only the first client's
    expect(node.polls).toHaveLength(0);
    node.stallUpgrades = false; // it resumes: the next WebSocket attempt gets through
    await (await node.nextSocket(5000)).welcome();
    await rec.nth('welcome', 2, 5000);
    expect(client.transport).toBe('websocket');
  });

  it('goes on to SSE when this runtime cannot open a WebSocket, saying why', async () => {
    const NoWebSocket = class {
      constructor() {
        throw new Error('no WebSocket here');
      }
    } as unknown as HeraldClientOptions['WebSocket'];
    const { client, rec } = makeClient({ WebSocket: NoWebSocket });
    const connected = client.connect();
    (await node.nextStream()).welcome();
    await connected;
    expect(client.transport).toBe('sse');
    expect(rec.of('error')[0]).toMatchObject({ code: 'socket_failed', fatal: false });
    expect(rec.of('error')[0]!.message).toMatch(/no WebSocket here/);
  });

  it('does not fall back when the node refuses the token on WebSocket', async () => {
    const { client } = makeClient({});
    const connected = client.connect();
    const s = await node.nextSocket();
    await s.next('hello');
    s.close(4001, 'bad token');
    await expect(connected).rejects.toMatchObject({ code: 'unauthorized' });
    expect(node.streams).toHaveLength(0);
    expect(node.polls).toHaveLength(0);
  });
});
