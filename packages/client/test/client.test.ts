// Over 400 lines: one scripted-node scenario per behaviour of the client, sharing one fake node.
import { CloseCode, FINAL_CLOSE_CODES, type NotificationFrame } from '@herald/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import {
  AUTH_CLOSE_CODES,
  CloseCode as ClientCloseCode,
  HeraldClient,
  type HeraldClientOptions,
  type HeraldEvents,
} from '../src/client.js';
import { MemoryCursorStorage } from '../src/cursors.js';
import { HeraldError } from '../src/errors.js';
import { FakeNode, Recorder } from './fake-node.js';

const ALL_EVENTS: (keyof HeraldEvents)[] = [
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

let node: FakeNode;
const clients: HeraldClient[] = [];

beforeEach(async () => {
  node = await FakeNode.start();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await node.stop();
});

function makeClient(opts: Partial<HeraldClientOptions> = {}): {
  client: HeraldClient;
  rec: Recorder<HeraldEvents>;
} {
  const client = new HeraldClient({
    url: node.url,
    token: 'tok',
    backoff: { initialMs: 20, maxMs: 100 },
    ...opts,
  });
  clients.push(client);
  return { client, rec: new Recorder(client, ALL_EVENTS) };
}

const ids = (ns: NotificationFrame[]): string[] => ns.map((n) => n.id);

describe('HeraldClient: hello and resume', () => {
  it('sends the stored cursors in the hello and resolves connect() on the welcome', async () => {
    const storage = new MemoryCursorStorage({ inbox: 12, 'topic:news': 40, 'not a stream': 3 });
    const { client, rec } = makeClient({ storage });
    const connected = client.connect();
    const s = await node.nextSocket();
    const hello = await s.welcome({ inbox: 12, broadcast: 7, 'topic:news': 40 });
    expect(hello).toEqual({ type: 'hello', token: 'tok', cursors: { inbox: 12, 'topic:news': 40 } });
    await connected;
    expect(client.state).toBe('open');
    expect(rec.of('state')).toEqual(['connecting', 'open']);
    expect(rec.of('welcome')[0]?.node).toBe('fake-1');
    // The server's cursor for a stream the client had none for is adopted (and persisted).
    expect(client.cursors()).toEqual({ inbox: 12, broadcast: 7, 'topic:news': 40, 'not a stream': 3 });
    expect(storage.load()).toMatchObject({ broadcast: 7 });
  });

  it('loads ws by itself in Node and also takes an explicit WebSocket constructor', async () => {
    expect((globalThis as { WebSocket?: unknown }).WebSocket).toBeUndefined();
    const { client } = makeClient({ WebSocket: NodeWebSocket });
    const connected = client.connect();
    await (await node.nextSocket()).welcome();
    await connected;
    expect(client.state).toBe('open');
  });

  it('accepts an http URL without a path', async () => {
    const { client } = makeClient({ url: node.url.replace('ws://', 'http://').replace('/v1/ws', '') });
    const connected = client.connect();
    await (await node.nextSocket()).welcome();
    await connected;
  });
});

describe('HeraldClient: delivery', () => {
  it('emits each notification once: duplicates by id or by seq are dropped', async () => {
    const { client, rec } = makeClient({ storage: new MemoryCursorStorage({ inbox: 5 }) });
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome({ inbox: 5 });
    s.notify('inbox', 4, 'old'); // seq <= cursor
    s.notify('inbox', 6, 'a');
    s.notify('inbox', 7, 'b');
    s.notify('inbox', 7, 'b'); // same frame again
    s.notify('inbox', 8, 'a'); // id seen, new seq
    s.notify('inbox', 9, 'c');
    await rec.wait('notification', (n) => n.id === 'c');
    expect(ids(rec.of('notification'))).toEqual(['a', 'b', 'c']);
    expect(rec.of('notification').map((n) => n.seq)).toEqual([6, 7, 9]);
    expect(client.cursors().inbox).toBe(9);
    const ack = await s.until(() => s.all('ack').find((a) => a.seq === 9), 'ack 9');
    expect(ack).toEqual({ type: 'ack', stream: 'inbox', seq: 9 });
  });

  it('still acks a duplicate it does not show', async () => {
    const { client, rec } = makeClient({ storage: new MemoryCursorStorage({ inbox: 5 }), ackDelayMs: 5 });
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome({ inbox: 5 });
    s.notify('inbox', 3, 'x3');
    expect(await s.next('ack')).toEqual({ type: 'ack', stream: 'inbox', seq: 3 });
    s.notify('inbox', 6, 'x6');
    await rec.wait('notification');
    expect(ids(rec.of('notification'))).toEqual(['x6']);
  });

  it('batches acks: one per stream per delay, carrying the highest seq', async () => {
    const { client, rec } = makeClient({ ackDelayMs: 100 });
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome({ inbox: 0, 'topic:news': 0 });
    for (let i = 1; i <= 5; i++) s.notify('inbox', i);
    for (let i = 1; i <= 3; i++) s.notify('topic:news', i);
    await rec.nth('notification', 8);
    await s.until(() => s.all('ack').length >= 2, 'two acks');
    expect(s.all('ack')).toEqual(
      expect.arrayContaining([
        { type: 'ack', stream: 'inbox', seq: 5 },
        { type: 'ack', stream: 'topic:news', seq: 3 },
      ]),
    );
    s.notify('inbox', 6);
    await s.until(() => s.all('ack').length >= 3, 'a third ack');
    expect(s.all('ack')[2]).toEqual({ type: 'ack', stream: 'inbox', seq: 6 });
    expect(s.all('ack')).toHaveLength(3);
  });

  it('while notifications keep coming acks at most once per ackIntervalMs; after a quiet interval at once', async () => {
    const { client, rec } = makeClient({ ackDelayMs: 5, ackIntervalMs: 400 });
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome({ inbox: 0 });
    s.notify('inbox', 1);
    await s.until(() => s.all('ack').length === 1, 'the first ack');
    const first = Date.now();
    expect(s.all('ack')[0]).toEqual({ type: 'ack', stream: 'inbox', seq: 1 });
    s.notify('inbox', 2);
    s.notify('inbox', 3);
    await rec.nth('notification', 3);
    await s.until(() => s.all('ack').length === 2, 'the held-back ack');
    // Held back until the interval since the first ack was over, then one for both.
    expect(Date.now() - first).toBeGreaterThanOrEqual(350);
    expect(s.all('ack')[1]).toEqual({ type: 'ack', stream: 'inbox', seq: 3 });
    // Quiet for longer than the interval: the next ack is not held back.
    await new Promise((r) => setTimeout(r, 450));
    const quiet = Date.now();
    s.notify('inbox', 4);
    await s.until(() => s.all('ack').length === 3, 'the ack after a quiet interval');
    expect(Date.now() - quiet).toBeLessThan(350);
    expect(s.all('ack')).toHaveLength(3);
  });

  it('with autoAck off sends only the acks the app makes, capped at the cursor', async () => {
    const { client, rec } = makeClient({ autoAck: false, ackDelayMs: 5 });
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome({ inbox: 0 });
    for (let i = 1; i <= 3; i++) s.notify('inbox', i);
    await rec.nth('notification', 3);
    client.ack('inbox', 2);
    expect(await s.next('ack')).toEqual({ type: 'ack', stream: 'inbox', seq: 2 });
    client.ack('inbox', 99);
    expect(await s.next('ack')).toEqual({ type: 'ack', stream: 'inbox', seq: 3 });
    expect(s.all('ack')).toHaveLength(2);
  });

  it('moves the cursor on a gap, including a reset back to the start', async () => {
    const { client, rec } = makeClient({ ackDelayMs: 5 });
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome({ inbox: 0 });
    s.send({ type: 'gap', stream: 'inbox', after: 0, next: 10, reason: 'trimmed' });
    s.notify('inbox', 10, 'n10');
    await rec.wait('notification', (n) => n.id === 'n10');
    expect(rec.of('gap')).toEqual([{ type: 'gap', stream: 'inbox', after: 0, next: 10, reason: 'trimmed' }]);
    expect(client.cursors().inbox).toBe(10);
    await s.until(() => s.all('ack').find((a) => a.seq === 10), 'ack 10');

    s.send({ type: 'gap', stream: 'inbox', after: 10, next: 1, reason: 'reset' });
    s.notify('inbox', 1, 'r1');
    await rec.wait('notification', (n) => n.id === 'r1');
    expect(client.cursors().inbox).toBe(1);
    expect(await s.until(() => s.all('ack').find((a) => a.seq === 1), 'ack 1')).toEqual({
      type: 'ack',
      stream: 'inbox',
      seq: 1,
    });
  });

  it('emits error frames and keeps the connection', async () => {
    const { client, rec } = makeClient();
    void client.connect();
    const s = await node.nextSocket();
    await s.welcome();
    s.send({ type: 'error', code: 'topic_forbidden', message: 'token does not allow topic x' });
    s.notify('inbox', 1);
    const err = await rec.wait('error');
    expect(err).toBeInstanceOf(HeraldError);
    expect(err).toMatchObject({ code: 'topic_forbidden', fatal: false });
    await rec.wait('notification');
    expect(client.state).toBe('open');
  });
});

describe('HeraldClient: reconnect', () => {
  it('reconnects with backoff after the server closes, with the latest cursors in the hello', async () => {
    const { client, rec } = makeClient({ backoff: { initialMs: 40, maxMs: 80 } });
    await Promise.all([client.connect(), node.nextSocket().then((s) => s.welcome({ inbox: 0 }))]);
    const s1 = node.sockets[0]!;
    for (let i = 1; i <= 3; i++) s1.notify('inbox', i);
    await rec.nth('notification', 3);
    s1.close(1001, 'going away');

    // Attempt 1 fails before a welcome, attempt 2 waits longer, the welcome resets the count.
    const s2 = await node.nextSocket();
    expect((await s2.next('hello')).cursors).toEqual({ inbox: 3 });
    s2.close(CloseCode.Internal, 'oops');
    const s3 = await node.nextSocket();
    await s3.welcome({ inbox: 3 });
    expect(await rec.nth('state', 4)).toBe('open');
    s3.close(CloseCode.Capacity, 'full');
    await node.nextSocket();

    const retries = rec.of('retry');
    expect(retries.map((r) => [r.reason, r.attempt])).toEqual([
      ['backoff', 1],
      ['backoff', 2],
      ['backoff', 1],
    ]);
    expect(retries[0]!.delayMs).toBeLessThan(40);
    expect(retries[1]!.delayMs).toBeLessThan(80);
    expect(retries[2]!.delayMs).toBeLessThan(40);
    expect(rec.of('disconnect').map((d) => d.code)).toEqual([1001, CloseCode.Internal, CloseCode.Capacity]);
    expect(rec.of('state')).toEqual(['connecting', 'open', 'reconnecting', 'open', 'reconnecting']);
  });

  it('resumes without loss or duplicates across a reconnect', async () => {
    const { client, rec } = makeClient({ ackDelayMs: 1000 });
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome({ inbox: 0 });
    s1.notify('inbox', 1, 'a');
    s1.notify('inbox', 2, 'b');
    await rec.nth('notification', 2);
    // The socket dies before the batched ack went out: the node did not get an ack.
    s1.close(CloseCode.Internal);
    const s2 = await node.nextSocket();
    const hello = await s2.welcome({ inbox: 2 });
    expect(hello.cursors).toEqual({ inbox: 2 });
    expect(s1.all('ack')).toEqual([]);
    // A node that replays from older state resends b; the app sees only c.
    s2.notify('inbox', 2, 'b');
    s2.notify('inbox', 3, 'c');
    await rec.wait('notification', (n) => n.id === 'c');
    expect(ids(rec.of('notification'))).toEqual(['a', 'b', 'c']);
  });

  it('reconnects after the delay of a reconnect frame', async () => {
    const { client, rec } = makeClient();
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    const t0 = Date.now();
    s1.send({ type: 'reconnect', delayMs: 200, reason: 'node draining' });
    s1.close(CloseCode.Draining, 'node draining');
    const s2 = await node.nextSocket();
    expect(s2.openedAt - t0).toBeGreaterThanOrEqual(195);
    const retry = await rec.wait('retry');
    expect(retry.reason).toBe('server');
    expect(retry.delayMs).toBeGreaterThanOrEqual(200);
    expect(retry.delayMs).toBeLessThan(300);
    expect(rec.of('disconnect')[0]).toEqual({ code: CloseCode.Draining, reason: 'node draining' });
    await s2.welcome();
    expect(await rec.nth('state', 4)).toBe('open');
  });

  it('pings after pingIdleMs of silence and drops the socket when nothing answers within pongTimeoutMs', async () => {
    const { client, rec } = makeClient({ pingIdleMs: 150, pongTimeoutMs: 100 });
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    const welcomedAt = Date.now();
    // Traffic defers the ping: a notification 100 ms in restarts the idle clock.
    await new Promise((r) => setTimeout(r, 100));
    s1.notify('inbox', 1);
    await s1.next('ping');
    const pingAt = Date.now();
    expect(pingAt - welcomedAt).toBeGreaterThanOrEqual(240);
    const d = await rec.wait('disconnect');
    expect(d).toEqual({ code: 1006, reason: 'no answer to ping within 100 ms' });
    expect(Date.now() - pingAt).toBeGreaterThanOrEqual(90);
    // It reconnects with its normal backoff and resumes from its cursors.
    const s2 = await node.nextSocket();
    expect((await s2.welcome({ inbox: 1 })).cursors).toEqual({ inbox: 1 });
    expect(await rec.nth('state', 4)).toBe('open');
  });

  it('keeps a quiet node that answers its pings', async () => {
    const { client, rec } = makeClient({ pingIdleMs: 50, pongTimeoutMs: 50 });
    void client.connect();
    const s1 = await node.nextSocket();
    s1.ws.on('message', (d) => {
      if (JSON.parse(d.toString()).type === 'ping') s1.send({ type: 'pong' });
    });
    await s1.welcome();
    // Four rounds of idle, ping and pong, each of which would have dropped a silent node.
    await s1.until(() => s1.all('ping').length >= 4, 'four pings', 3000);
    expect(rec.of('disconnect')).toEqual([]);
    expect(client.state).toBe('open');
  });

  it('counts protocol pings from the node as traffic (Node ws)', async () => {
    const { client, rec } = makeClient({ pingIdleMs: 100, pongTimeoutMs: 100 });
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    let pongs = 0;
    s1.ws.on('pong', () => {
      pongs++;
      s1.poke();
    });
    const timer = setInterval(() => s1.ws.ping(), 40);
    try {
      // 10 protocol pings span 400 ms: long enough for the watchdog to ping and drop twice over.
      await s1.until(() => pongs >= 10, 'ten protocol pongs', 3000);
    } finally {
      clearInterval(timer);
    }
    expect(rec.of('disconnect')).toEqual([]);
    expect(s1.all('ping')).toEqual([]);
    expect(client.state).toBe('open');
  });

  it('retries when no welcome arrives within welcomeTimeoutMs', async () => {
    const { client, rec } = makeClient({ welcomeTimeoutMs: 100 });
    const connected = client.connect();
    const s1 = await node.nextSocket();
    await s1.next('hello');
    const d = await rec.wait('disconnect');
    expect(d).toEqual({ code: 1006, reason: 'no welcome within 100 ms' });
    await (await node.nextSocket()).welcome();
    await connected;
  });
});

describe('HeraldClient: auth failures', () => {
  it("acts on the protocol catalog's close codes (kept as numbers for the bundle size)", () => {
    for (const [name, code] of Object.entries(ClientCloseCode))
      expect(code, name).toBe(CloseCode[name as keyof typeof ClientCloseCode]);
    expect([...AUTH_CLOSE_CODES].sort()).toEqual([...FINAL_CLOSE_CODES, CloseCode.TokenExpired].sort());
  });

  it('stops on 4001 with a static token, emits a fatal error and rejects connect()', async () => {
    const { client, rec } = makeClient({ backoff: { initialMs: 1, maxMs: 2 } });
    const connected = client.connect();
    const s1 = await node.nextSocket();
    await s1.next('hello');
    s1.close(CloseCode.Unauthorized, 'bad signature');
    await expect(connected).rejects.toMatchObject({ code: 'unauthorized', fatal: true, closeCode: 4001 });
    const err = await rec.wait('error');
    expect(err).toMatchObject({ code: 'unauthorized', fatal: true });
    expect(err.message).toBe('the server rejected the device token (close 4001: bad signature)');
    expect(client.state).toBe('closed');
    expect(rec.of('retry')).toEqual([]);
    // With 1-2 ms backoff a retry would have connected long before this bound.
    await expect(node.nextSocket(150)).rejects.toThrow(/timed out/);
    expect(node.sockets).toHaveLength(1);
  });

  it('stops on 4003 (token expired) with a static token', async () => {
    const { client, rec } = makeClient();
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    s1.close(CloseCode.TokenExpired, 'token expired');
    expect(await rec.wait('error')).toMatchObject({ code: 'token_expired', fatal: true, closeCode: 4003 });
    expect(client.state).toBe('closed');
    expect(rec.of('retry')).toEqual([]);
  });

  it('calls a token function again for a fresh token before retrying', async () => {
    const tokens = ['t1', 't2'];
    let calls = 0;
    const { client, rec } = makeClient({
      token: async () => tokens[Math.min(calls++, tokens.length - 1)]!,
    });
    const connected = client.connect();
    const s1 = await node.nextSocket();
    expect((await s1.next('hello')).token).toBe('t1');
    s1.close(CloseCode.Unauthorized, 'bad signature');
    const s2 = await node.nextSocket();
    expect((await s2.welcome()).token).toBe('t2');
    await connected;
    expect(calls).toBe(2);
    // The rejection is reported, but not as fatal: the client went on with a fresh token.
    expect(rec.of('error')).toEqual([expect.objectContaining({ code: 'unauthorized', fatal: false })]);
    // A plain disconnect reuses the token: the function is not called again.
    s2.close(1001);
    const s3 = await node.nextSocket();
    expect((await s3.welcome()).token).toBe('t2');
    expect(calls).toBe(2);
  });

  it('stops when the token function returns the token that was just rejected, saying why', async () => {
    // An HS256 token (header {"alg":"HS256","typ":"JWT"}) that the node's secret does not verify.
    const jwt = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.e30.c2ln`;
    const { client, rec } = makeClient({ token: () => jwt });
    const connected = client.connect();
    const s1 = await node.nextSocket();
    await s1.next('hello');
    s1.close(CloseCode.Unauthorized, 'invalid token: signature verification failed');
    const err = await connected.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'unauthorized', fatal: true });
    expect((err as Error).message).toBe(
      'the server rejected the device token (close 4001: invalid token: signature verification failed): ' +
        "the token secret used to mint it does not match the server's HERALD_TOKEN_SECRET",
    );
    expect(client.state).toBe('closed');
    expect(rec.of('retry')).toHaveLength(1);
    expect(node.sockets).toHaveLength(1);
  });

  it('retries with backoff when the token function throws', async () => {
    let calls = 0;
    const { client, rec } = makeClient({
      token: () => {
        if (++calls === 1) throw new Error('auth server down');
        return 'ok';
      },
    });
    const connected = client.connect();
    expect(await rec.wait('error')).toMatchObject({ code: 'token_failed', fatal: false });
    expect((await (await node.nextSocket()).welcome()).token).toBe('ok');
    await connected;
  });

  it('bounds a token function that never answers by connectTimeoutMs', async () => {
    let calls = 0;
    const { client, rec } = makeClient({
      connectTimeoutMs: 50,
      token: () => (++calls === 1 ? new Promise<string>(() => undefined) : 'late'),
    });
    const connected = client.connect();
    expect(await rec.wait('error')).toMatchObject({ code: 'token_failed', fatal: false });
    expect((await (await node.nextSocket()).welcome()).token).toBe('late');
    await connected;
  });

  it('sends a refresh frame with a fresh token', async () => {
    let n = 0;
    const { client } = makeClient({ token: () => `t${++n}` });
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    await client.connect();
    await client.refreshToken();
    expect(await s1.next('refresh')).toEqual({ type: 'refresh', token: 't2' });
    s1.close(1001);
    expect((await (await node.nextSocket()).next('hello')).token).toBe('t2');
  });
});

describe('HeraldClient: topics', () => {
  it('replays subscribe intents on connect, from the topics option and subscribe()', async () => {
    const { client, rec } = makeClient({
      topics: ['news'],
      storage: new MemoryCursorStorage({ 'topic:sport': 4 }),
    });
    client.subscribe('sport');
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome({ inbox: 0 });
    const subs = [await s1.next('subscribe'), await s1.next('subscribe')];
    expect(subs).toEqual(
      expect.arrayContaining([
        { type: 'subscribe', topic: 'news' },
        { type: 'subscribe', topic: 'sport', cursor: 4 },
      ]),
    );
    s1.send({ type: 'subscribed', topic: 'news', cursor: 10 });
    await rec.wait('subscribed');
    expect(client.cursors()['topic:news']).toBe(10);

    // While offline, intents wait; nothing else is queued.
    s1.close(CloseCode.Internal);
    await rec.wait('disconnect');
    client.unsubscribe('sport');
    client.ack('topic:news', 10);
    const s2 = await node.nextSocket();
    // The node kept both durable subscriptions: no subscribe needed, the unsubscribe is replayed.
    await s2.welcome({ inbox: 0, 'topic:news': 10, 'topic:sport': 4 });
    expect(await s2.next('unsubscribe')).toEqual({ type: 'unsubscribe', topic: 'sport' });
    s2.send({ type: 'unsubscribed', topic: 'sport' });
    await rec.wait('unsubscribed');
    expect(client.cursors()['topic:sport']).toBeUndefined();
    expect(s2.all('subscribe')).toEqual([]);
    expect(s2.all('ack')).toEqual([]);
  });

  it('subscribes and unsubscribes at once while connected', async () => {
    const { client } = makeClient();
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    await client.connect();
    client.subscribe('alerts.eu');
    expect(await s1.next('subscribe')).toEqual({ type: 'subscribe', topic: 'alerts.eu' });
    client.unsubscribe('alerts.eu');
    expect(await s1.next('unsubscribe')).toEqual({ type: 'unsubscribe', topic: 'alerts.eu' });
    expect(() => client.subscribe('bad topic')).toThrow(TypeError);
  });
});

describe('HeraldClient: close', () => {
  it('closes for good and resolves once the socket is closed', async () => {
    const { client, rec } = makeClient({ ackDelayMs: 10_000 });
    void client.connect();
    const s1 = await node.nextSocket();
    await s1.welcome();
    s1.notify('inbox', 1);
    await rec.wait('notification');
    await client.close();
    expect(client.state).toBe('closed');
    // The pending ack is sent before the close.
    expect(s1.all('ack')).toEqual([{ type: 'ack', stream: 'inbox', seq: 1 }]);
    expect((await s1.waitClosed()).code).toBe(1000);
    expect(rec.of('retry')).toEqual([]);
    expect(rec.of('state').at(-1)).toBe('closed');
  });

  it('rejects a pending connect() when closed before the welcome', async () => {
    const { client } = makeClient();
    const connected = client.connect();
    await (await node.nextSocket()).next('hello');
    await client.close();
    await expect(connected).rejects.toMatchObject({ code: 'closed' });
  });

  it('can connect again after close()', async () => {
    const { client } = makeClient();
    void client.connect();
    await (await node.nextSocket()).welcome();
    await client.close();
    const again = client.connect();
    await (await node.nextSocket()).welcome();
    await again;
    expect(client.state).toBe('open');
  });
});

describe('HeraldClient: browser lifecycle', () => {
  /** Stand-ins for `window` and `document`: real EventTargets the test fires events on. */
  function targets(): { window: EventTarget; document: EventTarget & { visibilityState: string } } {
    return {
      window: new EventTarget(),
      document: Object.assign(new EventTarget(), { visibilityState: 'visible' }),
    };
  }

  it('reconnects at once when the network comes back instead of waiting out its backoff', async () => {
    const lifecycle = targets();
    const { client, rec } = makeClient({
      lifecycle,
      backoff: { initialMs: 60_000, maxMs: 60_000, random: () => 1 },
    });
    await Promise.all([client.connect(), node.nextSocket().then((s) => s.welcome({ inbox: 0 }))]);
    node.sockets[0]!.close(1001, 'going away');
    const retry = await rec.wait('retry');
    expect(retry.delayMs).toBeGreaterThan(30_000);
    lifecycle.window.dispatchEvent(new Event('online'));
    const s2 = await node.nextSocket();
    await s2.welcome({ inbox: 0 });
    await rec.nth('welcome', 2);
    expect(client.state).toBe('open');
  });

  it('waits while the tab is hidden and reconnects when it becomes visible', async () => {
    const lifecycle = targets();
    const { client, rec } = makeClient({
      lifecycle,
      backoff: { initialMs: 60_000, maxMs: 60_000, random: () => 1 },
    });
    await Promise.all([client.connect(), node.nextSocket().then((s) => s.welcome({ inbox: 0 }))]);
    node.sockets[0]!.close(1001, 'going away');
    await rec.wait('retry');
    lifecycle.document.visibilityState = 'hidden';
    lifecycle.document.dispatchEvent(new Event('visibilitychange'));
    lifecycle.document.visibilityState = 'visible';
    lifecycle.document.dispatchEvent(new Event('visibilitychange'));
    const s2 = await node.nextSocket();
    await s2.welcome({ inbox: 0 });
    await rec.nth('welcome', 2);
    expect(client.state).toBe('open');
    expect(node.sockets.length).toBe(2);
  });
});
