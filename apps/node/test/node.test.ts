import { metric, Probe, parseMetrics, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import {
  createRedis,
  encodeDoorbell,
  Keys,
  type NewEntry,
  Presence,
  StatusStore,
  Streams,
} from '@herald/store';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

const keys = new Keys('herald');
let redis: Awaited<ReturnType<typeof startRedis>>;
let cmd: Redis;
let node: HeraldNode;
let url: string;
let streams: Streams;

async function token(
  device: string,
  user = 'u1',
  extra: Record<string, unknown> = {},
  exp = '1h',
): Promise<string> {
  return new SignJWT({ uid: user, ...extra })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

let n = 0;
const entry = (data: unknown = { n: ++n }, ttlMs = 60_000): NewEntry => ({
  id: `id-${++n}`,
  data: JSON.stringify(data),
  ts: Date.now(),
  exp: Date.now() + ttlMs,
});

/** What the worker does for a device target: append, then ring the node's doorbell. */
async function publishToDevice(device: string, e = entry()): Promise<number> {
  const [r] = await streams.appendInboxes([device], e);
  for (const nodeId of r!.nodes)
    await cmd.publish(
      keys.nodeChannel(nodeId),
      encodeDoorbell({ k: 'inbox', entry: e, to: [[device, r!.seq]] }),
    );
  return r!.seq;
}

async function publishToTopic(topic: string, e = entry()): Promise<number> {
  const seq = await streams.appendTopic(topic, e);
  await cmd.publish(
    keys.topicChannel(topic),
    encodeDoorbell({ k: 'stream', stream: `topic:${topic}`, seq, entry: e }),
  );
  return seq;
}

async function hello(
  device: string,
  cursors?: Record<string, number>,
  claims: Record<string, unknown> = {},
): Promise<Probe> {
  const p = await Probe.open(url);
  p.send({ type: 'hello', token: await token(device, 'u1', claims), cursors });
  await p.frame('welcome');
  return p;
}

beforeAll(async () => {
  redis = await startRedis();
  cmd = createRedis(redis.url, 'background');
  streams = new Streams(cmd, keys, { inboxMaxLen: 1000, topicMaxLen: 1000, keepMs: 60_000 });
  node = makeNode(redis.url, { helloTimeoutMs: 300, maxTopics: 4, replayBatch: 5 });
  const port = await node.start();
  url = `ws://127.0.0.1:${port}/v1/ws`;
});

afterAll(async () => {
  await node?.stop();
  cmd?.disconnect();
  await redis?.stop();
});

describe('door', () => {
  it('closes 4001 on a bad token and stays up', async () => {
    const p = await Probe.open(url);
    p.send({ type: 'hello', token: 'not-a-jwt' });
    expect((await p.waitClose()).code).toBe(4001);
    const forged = await new SignJWT({ uid: 'u' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('d')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('another-secret-xxxxxxxx'));
    const q = await Probe.open(url);
    q.send({ type: 'hello', token: forged });
    expect((await q.waitClose()).code).toBe(4001);
    (await hello('door-ok')).close();
  });

  it("reads aud as the token's app: default passes on a single-app node, another app is 4001", async () => {
    (await hello('door-aud', undefined, { aud: 'default' })).close();
    const p = await Probe.open(url);
    p.send({ type: 'hello', token: await token('door-aud', 'u1', { aud: 'shop' }) });
    expect(await p.waitClose()).toMatchObject({
      code: 4001,
      reason: expect.stringMatching(/unknown app "shop"/),
    });
    const q = await Probe.open(url);
    q.send({ type: 'hello', token: await token('door-aud', 'u1', { aud: ['default'] }) });
    expect(await q.waitClose()).toMatchObject({ code: 4001, reason: expect.stringMatching(/aud/) });
  });

  it('closes 4003 on an expired token', async () => {
    const p = await Probe.open(url);
    p.send({
      type: 'hello',
      token: await token('d-exp', 'u1', {}, (Math.floor(Date.now() / 1000) - 10) as unknown as string),
    });
    expect((await p.waitClose()).code).toBe(4003);
  });

  it('closes 4002 when no hello comes', async () => {
    const p = await Probe.open(url);
    expect((await p.waitClose()).code).toBe(4002);
  });

  it('closes 4000 on frames before hello, bad JSON, binary frames', async () => {
    const a = await Probe.open(url);
    a.send({ type: 'ack', stream: 'inbox', seq: 1 });
    expect((await a.waitClose()).code).toBe(4000);
    const b = await Probe.open(url);
    b.send('{nope');
    expect((await b.waitClose()).code).toBe(4000);
    const c = await Probe.open(url);
    c.ws.send(Buffer.from([1, 2, 3]));
    expect((await c.waitClose()).code).toBe(4000);
  });

  it('closes 1009 on a frame above the payload limit', async () => {
    const p = await Probe.open(url);
    p.send({ type: 'hello', token: 'x'.repeat(10_000) });
    expect((await p.waitClose()).code).toBe(1009);
  });
});

describe('delivery', () => {
  it('replays an inbox from cursor 0, then delivers live in order', async () => {
    for (let i = 0; i < 12; i++) await publishToDevice('dev-a');
    const p = await hello('dev-a');
    await p.until(() => p.notifications('inbox').length === 12, '12 replayed');
    await publishToDevice('dev-a');
    await p.until(() => p.notifications('inbox').length === 13, 'live one');
    expect(p.notifications('inbox').map((f) => f.seq)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    p.close();
  });

  it('resumes after the client cursor, with no duplicate at the replay/live seam', async () => {
    for (let i = 0; i < 20; i++) await publishToDevice('dev-b');
    const p = await Probe.open(url);
    p.send({ type: 'hello', token: await token('dev-b'), cursors: { inbox: 7 } });
    // Publish while the replay runs (batches of 5): live doorbells race the replay.
    for (let i = 0; i < 30; i++) {
      await publishToDevice('dev-b');
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    await p.until(() => p.notifications('inbox').length >= 43, 'all after cursor');
    expect(p.notifications('inbox').map((f) => f.seq)).toEqual(Array.from({ length: 43 }, (_, i) => i + 8));
    p.close();
  });

  it('says so when a cursor is older than what is retained', async () => {
    for (let i = 0; i < 10; i++) await publishToDevice('dev-c');
    await cmd.xtrim(keys.inbox('dev-c').stream, 'MINID', '6-0');
    const p = await hello('dev-c', { inbox: 2 });
    const gap = await p.frame('gap');
    expect(gap).toMatchObject({ stream: 'inbox', after: 2, next: 6, reason: 'trimmed' });
    await p.until(() => p.notifications().length === 5, 'retained ones');
    expect(p.notifications().map((f) => f.seq)).toEqual([6, 7, 8, 9, 10]);
    p.close();
  });

  it('announces a reset when the cursor is past the head', async () => {
    await publishToDevice('dev-r');
    const p = await hello('dev-r', { inbox: 50 });
    expect(await p.frame('gap')).toMatchObject({ stream: 'inbox', after: 50, next: 1, reason: 'reset' });
    await p.until(() => p.notifications().length === 1, 'entry 1');
    p.close();
  });

  it('never delivers an expired entry', async () => {
    const short = entry({ short: true }, 150);
    await publishToDevice('dev-x', short);
    await new Promise((r) => setTimeout(r, short.exp - Date.now() + 20)); // let its TTL pass
    await publishToDevice('dev-x', entry({ long: true }));
    const p = await hello('dev-x');
    await p.until(() => p.notifications().length === 1, 'the live one');
    expect(p.notifications()[0]!.data).toEqual({ long: true });
    expect(p.frames.find((f) => f.type === 'gap')).toMatchObject({ after: 0, next: 2 });
    p.close();
  });

  it('announces collapsed and expired runs as gaps of their reason, seqs contiguous', async () => {
    const short = entry({ short: true }, 150);
    await publishToDevice('dev-ck', { ...entry({ a: 1 }), collapseKey: 'a' });
    await publishToDevice('dev-ck', short);
    await publishToDevice('dev-ck', { ...entry({ a: 2 }), collapseKey: 'a' });
    await new Promise((r) => setTimeout(r, short.exp - Date.now() + 20)); // let its TTL pass
    await publishToDevice('dev-ck', { ...entry({ a: 3 }), collapseKey: 'a', priority: 'high' });
    await publishToDevice('dev-ck', { ...entry({ b: 1 }), collapseKey: 'b' });
    const p = await hello('dev-ck');
    await p.until(() => p.notifications().length === 2, 'the two kept');
    const shown = p.frames
      .filter((f) => f.type !== 'welcome')
      .map((f) => (f.type === 'gap' ? [f.after, f.next, f.reason] : [f.seq, f.priority, f.data]));
    expect(shown).toEqual([
      [0, 2, 'collapsed'],
      [1, 3, 'expired'],
      [2, 4, 'collapsed'],
      [4, 'high', { a: 3 }],
      [5, undefined, { b: 1 }],
    ]);
    p.close();
  });

  it('an ack past collapsed and expired gaps counts only the entries the device got (the others were never delivered)', async () => {
    const status = new StatusStore(cmd, keys, 60_000);
    const short = entry({ short: true }, 150);
    const all = [{ ...entry({ a: 1 }), collapseKey: 'a' }, short, { ...entry({ a: 2 }), collapseKey: 'a' }];
    for (const e of all) {
      await status.create(e.id, { state: 'sent', target: 'devices', createdAt: Date.now(), exp: e.exp });
      await publishToDevice('dev-ckack', e);
    }
    await new Promise((r) => setTimeout(r, short.exp - Date.now() + 20)); // let its TTL pass
    const p = await hello('dev-ckack');
    await p.until(() => p.notifications().length === 1, 'the newest');
    p.send({ type: 'ack', stream: 'inbox', seq: 3 });
    await waitFor(async () => ((await status.get(all[2]!.id))?.counts.acked === 1 ? true : undefined));
    // The collapsed and the expired one: neither delivered nor acked here.
    for (const e of all.slice(0, 2))
      expect((await status.get(e.id))?.counts).toMatchObject({ delivered: 0, acked: 0 });
    p.close();
  });

  it('counts delivered and acked per notification and stores the acked cursor', async () => {
    const status = new StatusStore(cmd, keys, 60_000);
    const e = entry();
    await status.create(e.id, { state: 'sent', target: 'devices', createdAt: Date.now(), exp: e.exp });
    const p = await hello('dev-ack');
    const seq = await publishToDevice('dev-ack', e);
    await p.until(() => p.notifications().length === 1, 'notification');
    p.send({ type: 'ack', stream: 'inbox', seq });
    const st = await waitFor(async () => {
      const s = await status.get(e.id);
      return s && s.counts.acked === 1 ? s : undefined;
    });
    expect(st.counts).toMatchObject({ delivered: 1, acked: 1 });
    expect(await cmd.hget(keys.cursors('dev-ack'), 'inbox')).toBe(String(seq));
    p.send({ type: 'ack', stream: 'inbox', seq: seq + 5 });
    expect(await p.frame('error')).toMatchObject({ code: 'bad_ack' });
    p.close();
  });
});

describe('topics', () => {
  it('subscribes, replays nothing old, delivers live, and keeps the subscription across reconnects', async () => {
    await publishToTopic('news');
    const p = await hello('dev-t1');
    p.send({ type: 'subscribe', topic: 'news' });
    const sub = await p.frame('subscribed');
    await publishToTopic('news');
    await p.until(() => p.notifications('topic:news').length === 1, 'topic entry');
    expect(p.notifications('topic:news')[0]!.seq).toBe((sub.cursor as number) + 1);
    p.close();
    await publishToTopic('news');
    const q = await hello('dev-t1', { 'topic:news': (sub.cursor as number) + 1 });
    await q.until(() => q.notifications('topic:news').length === 1, 'missed topic entry');
    expect(q.notifications('topic:news')[0]!.seq).toBe((sub.cursor as number) + 2);
    q.close();
  });

  it('takes a subscribe cursor past the head as a reset before answering, so a publish right after it is delivered', async () => {
    const p = await hello('dev-t5');
    p.send({ type: 'subscribe', topic: 'fresh.a', cursor: 1 });
    expect(await p.frame('subscribed')).toMatchObject({ topic: 'fresh.a', cursor: 1 });
    const seq = await publishToTopic('fresh.a');
    expect(seq).toBe(1);
    await p.until(() => p.notifications('topic:fresh.a').length === 1, 'entry 1');
    const after = p.frames.slice(p.frames.findIndex((f) => f.type === 'subscribed') + 1);
    expect(after.map((f) => f.type)).toEqual(['gap', 'notification']);
    expect(after[0]).toMatchObject({ stream: 'topic:fresh.a', after: 1, next: 1, reason: 'reset' });
    p.close();
  });

  it('refuses topics outside the token claim and beyond the per-connection limit', async () => {
    const p = await hello('dev-t2', undefined, { topics: ['sport.*'] });
    p.send({ type: 'subscribe', topic: 'news' });
    expect(await p.frame('error')).toMatchObject({ code: 'topic_forbidden' });
    for (const t of ['sport.a', 'sport.b', 'sport.c', 'sport.d', 'sport.e'])
      p.send({ type: 'subscribe', topic: t });
    expect(await p.frame('error', 5000, (f) => f.code === 'too_many_topics')).toBeTruthy();
    p.close();
  });

  it('follows subscription changes made by the backend', async () => {
    const p = await hello('dev-t3');
    const devices = node.devices;
    await devices.subscribe('dev-t3', 'alerts');
    await devices.initCursor('dev-t3', 'topic:alerts', await streams.head(keys.topic('alerts')));
    await cmd.publish(
      keys.nodeChannel('node-t'),
      encodeDoorbell({ k: 'sub', device: 'dev-t3', topic: 'alerts' }),
    );
    await p.frame('subscribed');
    await publishToTopic('alerts');
    await p.until(() => p.notifications('topic:alerts').length === 1, 'alert');
    p.close();
  });
});

describe('metrics', () => {
  it('exposes counters that move with traffic', async () => {
    const port = new URL(url).port;
    const scrape = async () => {
      const samples = parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      return {
        samples,
        value: (name: string, labels: Record<string, string> = {}) => metric(samples, name, labels) ?? 0,
      };
    };
    const before = await scrape();
    const p = await hello('dev-metrics');
    await publishToDevice('dev-metrics');
    await p.until(() => p.notifications().length === 1, 'notification');
    p.send({ type: 'ack', stream: 'inbox', seq: 1 });
    p.send({ type: 'ping' });
    await p.frame('pong');
    const after = await scrape();
    const inbox = { stream: 'inbox', app: 'node', node: 'node-t' };
    expect(after.value('herald_deliveries_total', inbox)).toBeGreaterThan(
      before.value('herald_deliveries_total', inbox),
    );
    expect(after.value('herald_acks_total')).toBeGreaterThan(before.value('herald_acks_total'));
    expect(after.value('herald_frames_in_total', { type: 'hello' })).toBeGreaterThan(0);
    expect(after.value('herald_connections', { node: 'node-t' })).toBeGreaterThan(0);
    expect(after.value('herald_publish_to_socket_seconds_count')).toBeGreaterThan(0);
    expect(after.samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
    p.close();
  });
});

describe('presence', () => {
  it('is recorded while connected and removed on close', async () => {
    const presence = new Presence(cmd, keys, 60_000);
    const p = await hello('dev-p');
    expect(await presence.nodesOf('dev-p')).toEqual(['node-t']);
    p.close();
    await waitFor(async () => ((await presence.nodesOf('dev-p')).length === 0 ? true : undefined));
  });
});

async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
