import { Writable } from 'node:stream';
import { decodeCursors, encodeCursors } from '@herald/protocol';
import { http, SseReader, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, encodeDoorbell, Keys, type NewEntry, StatusStore, Streams } from '@herald/store';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

const keys = new Keys('herald');
let redis: Awaited<ReturnType<typeof startRedis>>;
let cmd: Redis;
let node: HeraldNode;
let base: string;
let streams: Streams;
let status: StatusStore;
/** Every log line the node wrote (at trace level). */
let logged = '';

async function token(device: string, claims: Record<string, unknown> = {}, exp: string | number = '1h') {
  return new SignJWT({ uid: 'u1', ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

let n = 0;
async function entry(data: unknown = { n: ++n }): Promise<NewEntry> {
  const e = { id: `h-${++n}`, data: JSON.stringify(data), ts: Date.now(), exp: Date.now() + 60_000 };
  await status.create(e.id, { state: 'sent', target: 'devices', createdAt: e.ts, exp: e.exp, targets: 1 });
  return e;
}

async function toDevice(device: string): Promise<number> {
  const e = await entry();
  const [r] = await streams.appendInboxes([device], e);
  for (const nodeId of r!.nodes)
    await cmd.publish(
      keys.nodeChannel(nodeId),
      encodeDoorbell({ k: 'inbox', entry: e, to: [[device, r!.seq]] }),
    );
  return r!.seq;
}

async function toTopic(topic: string): Promise<number> {
  const e = await entry();
  const seq = await streams.appendTopic(topic, e);
  await cmd.publish(
    keys.topicChannel(topic),
    encodeDoorbell({ k: 'stream', stream: `topic:${topic}`, seq, entry: e }),
  );
  return seq;
}

const sse = async (device: string, query = '', headers: Record<string, string> = {}, claims = {}) =>
  SseReader.open(`${base}/v1/sse${query}`, {
    authorization: `Bearer ${await token(device, claims)}`,
    ...headers,
  });

function cursorsOf(id: string | undefined): Record<string, number> {
  const d = decodeCursors(id ?? '');
  if (!d.ok) throw new Error(`bad id ${id}: ${d.reason}`);
  return d.cursors;
}

const seqOf = (data: string) => (JSON.parse(data) as { seq: number }).seq;

beforeAll(async () => {
  redis = await startRedis();
  cmd = createRedis(redis.url, 'background');
  streams = new Streams(cmd, keys, { inboxMaxLen: 10_000, topicMaxLen: 1000, keepMs: 60_000 });
  status = new StatusStore(cmd, keys, 60_000);
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  // A logger that writes everything, to check no token reaches it.
  node = makeNode(
    redis.url,
    { replayBatch: 5, maxTopics: 4, slowConsumerBytes: 64 * 1024 },
    { pollMaxWaitMs: 1500, sseHeartbeatMs: 200 },
    pino({ level: 'trace' }, sink),
  );
  const port = await node.start();
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await node?.stop();
  cmd?.disconnect();
  await redis?.stop();
});

describe('SSE', () => {
  it('refuses before the stream: no token, bad token, expired token (401 with a code)', async () => {
    const none = await http('GET', `${base}/v1/sse`);
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: 'HERALD_UNAUTHORIZED' });
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="herald"');
    const bad = await http('GET', `${base}/v1/sse?token=not-a-jwt`);
    expect(bad.status).toBe(401);
    expect(bad.json).toMatchObject({ code: 'HERALD_UNAUTHORIZED' });
    const expired = await token('d', {}, Math.floor(Date.now() / 1000) - 10);
    const exp = await http('GET', `${base}/v1/sse`, { headers: { authorization: `Bearer ${expired}` } });
    expect(exp.status).toBe(401);
    expect(exp.json).toMatchObject({ code: 'HERALD_TOKEN_EXPIRED' });
  });

  it('refuses bad cursors (400) and topics outside the claims (403)', async () => {
    const t = await token('d-bad', { topics: ['news.*'] });
    const get = (q: string, h: Record<string, string> = {}) =>
      http('GET', `${base}/v1/sse${q}`, { headers: h });
    for (const c of ['nope', '2.e30', '1.!!', `1.${'A'.repeat(9000)}`]) {
      const r = await get(`?token=${t}&cursors=${c}`);
      expect(r.status, c.slice(0, 20)).toBe(400);
      expect(r.json).toMatchObject({ code: 'HERALD_BAD_REQUEST' });
    }
    const h = await get(`?token=${t}`, { 'last-event-id': '1.eyJub3BlIjoxfQ' });
    expect(h.status).toBe(400);
    expect((h.json as { message: string }).message).toMatch(/unknown stream/);
    const f = await get(`?token=${t}&topics=news.a,sport`);
    expect(f.status).toBe(403);
    expect(f.json).toMatchObject({ code: 'HERALD_TOPIC_FORBIDDEN' });
    expect((await get(`?token=${t}&topics=news..a`)).status).toBe(400);
    expect((await get(`?token=${t}&topics=news.a&topics=news.b`)).status).toBe(400);
    expect((await get(`?token=${t}&topics=news.a,news.b,news.c,news.d,news.e`)).status).toBe(400);
  });

  it('streams welcome and notifications with cursor ids, and resumes exactly from Last-Event-ID', async () => {
    const r = await SseReader.open(`${base}/v1/sse?token=${await token('d-sse')}&topics=chat`);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^herald_connections_by_transport\{transport="sse",[^}]*\} [1-9]/m);
    expect(r.res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(r.res.headers['cache-control']).toBe('no-store');
    expect(r.res.headers['x-accel-buffering']).toBe('no');
    // The stream runs on the socket taken from the HTTP server (http-detach.ts), not a response.
    expect(r.res.headers.connection).toBe('close');
    const w = await r.event('welcome');
    expect(JSON.parse(w.data)).toMatchObject({
      type: 'welcome',
      device: 'd-sse',
      streams: { inbox: { cursor: 0 } },
    });
    expect(Object.keys(cursorsOf(w.id)).sort()).toEqual(['broadcast', 'inbox', 'topic:chat']);
    const s1 = await toDevice('d-sse');
    const t1 = await toTopic('chat');
    const n1 = await r.event('notification', 1);
    const n2 = await r.event('notification', 2);
    expect(JSON.parse(n1.data)).toMatchObject({ type: 'notification', stream: 'inbox', seq: s1 });
    // 2. ids, with every stream's cursor (back on the inbox, the topic's stays).
    expect(n1.id).toMatch(/^2\.[a-z:.,0-9]+$/);
    expect(cursorsOf(n1.id).inbox).toBe(s1);
    expect(cursorsOf(n2.id)).toMatchObject({ inbox: s1, 'topic:chat': t1 });
    const s2 = await toDevice('d-sse');
    const n3 = await r.event('notification', 3);
    expect(cursorsOf(n3.id)).toEqual({ inbox: s2, broadcast: cursorsOf(w.id).broadcast, 'topic:chat': t1 });
    r.close();
    // Published while away: exactly these come back, none twice.
    const missed = [await toDevice('d-sse'), await toDevice('d-sse')];
    const r2 = await sse('d-sse', '?topics=chat', { 'last-event-id': n3.id! });
    await r2.event('notification', 2);
    await new Promise((res) => setTimeout(res, 100));
    expect(r2.of('notification').map((e) => seqOf(e.data))).toEqual(missed);
    // ?cursors= works the same (the header wins when both are given), in the JSON form (1.) too.
    const r3 = await sse('d-sse', `?topics=chat&cursors=${encodeCursors({ inbox: s2, 'topic:chat': t1 })}`);
    await r3.event('notification', 2);
    expect(r3.of('notification').map((e) => seqOf(e.data))).toEqual(missed);
    r2.close();
    r3.close();
  }, 20_000);

  it('sends retry first, heartbeat comments, and refresh before the token expires', async () => {
    const exp = Math.floor(Date.now() / 1000) + 30;
    const r = await SseReader.open(`${base}/v1/sse`, {
      authorization: `Bearer ${await token('d-hb', {}, exp)}`,
    });
    await r.event('welcome');
    await r.until(() => r.comments >= 2, 3000, 'two heartbeat comments');
    const refresh = await r.event('refresh', 1, 3000);
    expect(JSON.parse(refresh.data)).toEqual({ exp });
    expect(r.of('refresh')).toHaveLength(1);
    r.close();
  });

  it('closes a stream that is not read with a slow-consumer event, memory bounded', async () => {
    // 320 entries of 64 KiB (20 MB, more than both loopback socket buffers) wait; the reader
    // never reads (its socket is paused).
    const data = JSON.stringify({ big: 'x'.repeat(65_536) });
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < 320; i++)
      batch.push(
        streams.appendInboxes(['d-slow'], { id: `big-${i}`, data, ts: Date.now(), exp: Date.now() + 60_000 }),
      );
    await Promise.all(batch);
    const before = node.sessionDeps.stats.slowConsumers;
    const r = await sse('d-slow');
    r.res.pause();
    const deadline = Date.now() + 10_000;
    while (node.sessionDeps.stats.slowConsumers === before && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 20));
    expect(node.sessionDeps.stats.slowConsumers).toBe(before + 1);
    // Cut off: the node holds nothing for it any more.
    for (const c of node.hub.connections) expect(c.device).not.toBe('d-slow');
    r.res.resume();
    await r.until(() => r.ended, 10_000, 'the end of the stream');
    const err = r.of('error').at(-1);
    expect(err && JSON.parse(err.data)).toEqual({ code: 4009, reason: 'slow consumer' });
  }, 20_000);
});

describe('long-poll', () => {
  const poll = async (device: string, q: string) =>
    http('GET', `${base}/v1/poll${q}`, { headers: { authorization: `Bearer ${await token(device)}` } });

  it('answers at once with a bounded batch, then holds until a doorbell', async () => {
    const seqs: number[] = [];
    for (let i = 0; i < 7; i++) seqs.push(await toDevice('d-poll'));
    const a = await poll('d-poll', '?wait=5');
    expect(a.status).toBe(200);
    const body = a.json as { cursors: string; frames: { seq: number; stream: string }[] };
    expect(body.frames.map((f) => f.seq)).toEqual(seqs.slice(0, 5));
    expect(cursorsOf(body.cursors).inbox).toBe(seqs[4]);
    const b = (await poll('d-poll', `?cursors=${body.cursors}`)).json as typeof body;
    expect(b.frames.map((f) => f.seq)).toEqual(seqs.slice(5));
    const t0 = Date.now();
    const held = poll('d-poll', `?cursors=${b.cursors}&wait=5`);
    await new Promise((res) => setTimeout(res, 200));
    const next = await toDevice('d-poll');
    const c = (await held).json as typeof body;
    expect(c.frames.map((f) => f.seq)).toEqual([next]);
    expect(Date.now() - t0).toBeLessThan(3000);
    // Nothing new: an empty answer after `wait`.
    const t1 = Date.now();
    const e = (await poll('d-poll', `?cursors=${c.cursors}&wait=1`)).json as typeof body;
    expect(e.frames).toEqual([]);
    expect(e.cursors).toBe(c.cursors);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(900);
  });

  it('caps wait at HERALD_POLL_MAX_WAIT_S and refuses a bad wait', async () => {
    expect((await poll('d-w', '?wait=abc')).status).toBe(400);
    const t0 = Date.now();
    const r = await poll('d-w', '?wait=100');
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(2500);
  });
});

describe('acks over HTTP', () => {
  const ack = async (device: string, body: unknown, claims = {}) =>
    http('POST', `${base}/v1/acks`, {
      headers: { authorization: `Bearer ${await token(device, claims)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('moves the stored cursor and the acked counts, cumulatively and once', async () => {
    const s1 = await toDevice('d-ack');
    const s2 = await toDevice('d-ack');
    const s3 = await toDevice('d-ack');
    expect((await ack('d-ack', { cursors: { inbox: s2 } })).status).toBe(204);
    expect((await ack('d-ack', { cursors: encodeCursors({ inbox: s3 }) })).status).toBe(204);
    expect((await ack('d-ack', { cursors: { inbox: s2 } })).status).toBe(204);
    expect(await cmd.hget(keys.cursors('d-ack'), 'inbox')).toBe(String(s3));
    await node.flush();
    const { entries } = await streams.read(streams.keysOf('inbox', 'd-ack'), 0, 10);
    expect(entries.map((e) => e.seq)).toEqual([s1, s2, s3]);
    for (const e of entries) expect((await status.get(e.id))?.counts.acked, e.id).toBe(1);
  });

  it('does not count an entry superseded by its collapseKey (never delivered) as acked', async () => {
    const [old, kept] = [
      { ...(await entry()), collapseKey: 'score' },
      { ...(await entry()), collapseKey: 'score' },
    ];
    await streams.appendInboxes(['d-ack-ck'], old);
    const [r] = await streams.appendInboxes(['d-ack-ck'], kept);
    expect((await ack('d-ack-ck', { cursors: { inbox: r!.seq } })).status).toBe(204);
    await node.flush();
    expect((await status.get(kept.id))?.counts.acked).toBe(1);
    expect((await status.get(old.id))?.counts.acked).toBe(0);
  });

  it('refuses bad input with the stream named', async () => {
    const s = await toDevice('d-ack2');
    const past = await ack('d-ack2', { cursors: { inbox: s + 5 } });
    expect(past.status).toBe(400);
    expect((past.json as { message: string }).message).toMatch(/cursors\.inbox: ack \d+ is past/);
    expect((await ack('d-ack2', { cursors: { nope: 1 } })).status).toBe(400);
    expect((await ack('d-ack2', { cursors: 'garbage' })).status).toBe(400);
    expect((await ack('d-ack2', { cursors: { inbox: 1 }, extra: 1 })).status).toBe(400);
    expect((await ack('d-ack2', [])).status).toBe(400);
    const forbidden = await ack('d-ack2', { cursors: { 'topic:secret': 0 } }, { topics: ['news'] });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json).toMatchObject({ code: 'HERALD_TOPIC_FORBIDDEN' });
    const text = await http('POST', `${base}/v1/acks`, {
      headers: { authorization: `Bearer ${await token('d-ack2')}`, 'content-type': 'text/plain' },
      body: 'x',
    });
    expect(text.status).toBe(415);
    expect(text.json).toMatchObject({ code: 'HERALD_UNSUPPORTED_MEDIA_TYPE' });
    const noToken = await http('POST', `${base}/v1/acks`, {
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(noToken.status).toBe(401);
  });
});

describe('tokens in logs', () => {
  it('never writes a device token to the node log', async () => {
    const t = await token('d-log');
    await http('GET', `${base}/v1/nowhere?token=${t}`, { headers: { authorization: `Bearer ${t}` } });
    const r = await SseReader.open(`${base}/v1/sse?token=${t}`);
    await r.event('welcome');
    r.close();
    expect(logged.length).toBeGreaterThan(0);
    expect(logged).not.toContain(t.split('.')[2]);
  });
});

describe('limits shared with WebSocket', () => {
  it('refuses SSE (error event 4013) and polls (503) past the node cap and the per-user cap', async () => {
    const small = makeNode(
      redis.url,
      { maxConnections: 2, maxConnectionsPerUser: 1 },
      { pollMaxWaitMs: 2000 },
    );
    const b = `http://127.0.0.1:${await small.start()}`;
    try {
      const a = await SseReader.open(`${b}/v1/sse?token=${await token('cap-a', { uid: 'cap-u1' })}`);
      await a.event('welcome');
      // Same user: over the per-user cap, after the 200 (an EventSource retries by itself).
      const same = await SseReader.open(`${b}/v1/sse?token=${await token('cap-b', { uid: 'cap-u1' })}`);
      await same.until(() => same.ended, 3000, 'the end of the refused stream');
      expect(JSON.parse(same.of('error')[0]!.data)).toMatchObject({ code: 4013 });
      const userPoll = await http('GET', `${b}/v1/poll?wait=1`, {
        headers: { authorization: `Bearer ${await token('cap-c', { uid: 'cap-u1' })}` },
      });
      expect(userPoll.status).toBe(503);
      expect(userPoll.json).toMatchObject({ code: 'HERALD_NODE_BUSY' });
      expect(userPoll.headers.get('retry-after')).toBe('1');
      // Another user fills the node; a third connection is refused at the node cap.
      const held = http('GET', `${b}/v1/poll?wait=2`, {
        headers: { authorization: `Bearer ${await token('cap-d', { uid: 'cap-u2' })}` },
      });
      const deadline = Date.now() + 3000;
      while (small.hub.size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const full = await SseReader.open(`${b}/v1/sse?token=${await token('cap-e', { uid: 'cap-u3' })}`);
      await full.until(() => full.ended, 3000, 'the end of the refused stream');
      expect(JSON.parse(full.of('error')[0]!.data)).toEqual({ code: 4013, reason: 'node at capacity' });
      const fullPoll = await http('GET', `${b}/v1/poll?wait=1`, {
        headers: { authorization: `Bearer ${await token('cap-f', { uid: 'cap-u3' })}` },
      });
      expect(fullPoll.status).toBe(503);
      expect((await held).status).toBe(200);
      a.close();
    } finally {
      await small.stop();
    }
  });
});

describe('drain', () => {
  it('answers 2,000 held polls at once and sends SSE streams a reconnect with a retry', async () => {
    // Its own node: polls held up to 60 s, so all 2,000 are held at once however slow the machine.
    const n2 = makeNode(redis.url, { maxConnections: 5000 }, { pollMaxWaitMs: 60_000, drainMs: 500 });
    const b = `http://127.0.0.1:${await n2.start()}`;
    try {
      // 2,000 held polls of 2,000 users (the per-user cap is 100 here).
      const tokens = await Promise.all(
        Array.from({ length: 2000 }, (_, i) => token(`d-dp-${i}`, { uid: `dp-${i}` })),
      );
      const polls = tokens.map((t) =>
        http('GET', `${b}/v1/poll?wait=60`, { headers: { authorization: `Bearer ${t}` } }),
      );
      const r = await SseReader.open(`${b}/v1/sse?token=${await token('d-ds')}`);
      await r.event('welcome');
      const deadline = Date.now() + 30_000;
      while (n2.hub.size < 2001 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      expect(n2.hub.size).toBe(2001);
      const t0 = Date.now();
      const drained = n2.drain();
      const all = await Promise.all(polls);
      const took = Date.now() - t0;
      for (const a of all) {
        expect(a.status).toBe(200);
        expect((a.json as { frames: unknown[] }).frames).toMatchObject([
          { type: 'reconnect', reason: 'node draining' },
        ]);
      }
      // Answered at once: not spread over the drain window, nor held to `wait`.
      expect(took).toBeLessThan(5000);
      console.log(`drain answered 2,000 held polls in ${took} ms`);
      const rc = await r.event('reconnect');
      expect(rc.retry).toBe(JSON.parse(rc.data).delayMs);
      await r.until(() => r.ended, 3000, 'the end of the stream');
      expect(JSON.parse(r.of('error').at(-1)!.data)).toMatchObject({ code: 4012 });
      await drained;
    } finally {
      await n2.stop();
    }
  }, 90_000);
});
