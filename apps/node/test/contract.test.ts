import type { Socket } from 'node:net';
import { Probe, startRedis } from '@herald/stack';
import type { RedisClient } from '@herald/store';
import { createRedis, Keys, type NewEntry, StatusStore, Streams } from '@herald/store';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

// Issue #12: what a raw client written from docs/protocol.md found. Raw frames over a real
// WebSocket, a real node and a real Redis, with the documented default limits (50 frames/s,
// burst 100, 64 topics).

const keys = new Keys('herald');
let redis: Awaited<ReturnType<typeof startRedis>>;
let cmd: RedisClient;
let node: HeraldNode;
let url: string;

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  cmd = createRedis(redis.url, 'background');
  node = makeNode(redis.url, { frameRate: 50, maxTopics: 64, replayBatch: 100 }, { nodeId: 'node-c' });
  url = `ws://127.0.0.1:${await node.start()}/v1/ws`;
});
afterAll(async () => {
  await node?.stop();
  cmd?.disconnect();
  await redis?.stop();
});

function token(device: string): Promise<string> {
  return new SignJWT({ uid: 'u-contract' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(device)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

/** Sends frames in one TCP write (the socket is corked around them). */
function burst(p: Probe, frames: unknown[]): void {
  const raw = (p.ws as unknown as { _socket: Socket })._socket;
  raw.cork();
  for (const f of frames) p.send(f);
  raw.uncork();
}

async function hello(device: string, cursors?: Record<string, number>): Promise<Probe> {
  const p = await Probe.open(url);
  p.send({ type: 'hello', token: await token(device), cursors });
  await p.frame('welcome');
  return p;
}

describe('an invalid topic', () => {
  it('gets a topic_invalid error frame naming it, and the connection stays open', async () => {
    const p = await hello('c-topics');
    const bad = ['bad topic!', 'a..b', `t${'x'.repeat(128)}`, ''];
    for (const topic of bad) p.send({ type: 'subscribe', topic });
    for (const topic of bad) p.send({ type: 'unsubscribe', topic });
    await p.until(() => p.frames.filter((f) => f.type === 'error').length === 2 * bad.length, 'errors');
    const errors = p.frames.filter((f) => f.type === 'error');
    expect(errors.map((f) => [f.code, f.topic])).toEqual([...bad, ...bad].map((t) => ['topic_invalid', t]));
    // Still open, and a valid topic still works.
    p.send({ type: 'subscribe', topic: 'fine.topic' });
    expect(await p.frame('subscribed')).toMatchObject({ topic: 'fine.topic' });
    expect(p.closed).toBeUndefined();
    p.close();
  });

  it('of the wrong type is still a bad frame (4000)', async () => {
    const p = await hello('c-topics-2');
    p.send({ type: 'subscribe', topic: 7 });
    expect(await p.waitClose()).toMatchObject({ code: 4000 });
  });
});

describe('a burst within the documented rate', () => {
  it('of 100 frames in one write is answered in full; the 65th topic gets too_many_topics', async () => {
    const p = await Probe.open(url);
    const topics = Array.from({ length: 65 }, (_, i) => `burst.t${i}`);
    // hello, 65 subscribes and 34 pings: 100 frames, the documented burst.
    burst(p, [
      { type: 'hello', token: await token('c-burst') },
      ...topics.map((topic) => ({ type: 'subscribe', topic })),
      ...Array.from({ length: 34 }, () => ({ type: 'ping' })),
    ]);
    await p.until(() => p.frames.length === 100 || p.closed, '100 answers', 10_000);
    expect(p.closed).toBeUndefined();
    const by = (type: string) => p.frames.filter((f) => f.type === type);
    expect(by('welcome')).toHaveLength(1);
    expect(by('subscribed').map((f) => f.topic)).toEqual(topics.slice(0, 64));
    expect(by('error')).toEqual([expect.objectContaining({ code: 'too_many_topics', topic: topics[64] })]);
    expect(by('pong')).toHaveLength(34);
    p.close();
  });

  it('beyond the burst in one write closes 4008 with the documented reason', async () => {
    const p = await Probe.open(url);
    burst(p, [
      { type: 'hello', token: await token('c-flood') },
      ...Array.from({ length: 119 }, () => ({ type: 'ping' })),
    ]);
    expect(await p.waitClose()).toEqual({ code: 4008, reason: 'frame rate exceeded' });
  });
});

describe('an ack at or below the hello cursor', () => {
  it('moves the stored cursor and the acked counts of entries read elsewhere', async () => {
    const streams = new Streams(cmd, keys, { inboxMaxLen: 1000, topicMaxLen: 1000, keepMs: 60_000 });
    const status = new StatusStore(cmd, keys, 60_000);
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const e: NewEntry = { id: `offline-${i}`, data: '{}', ts: Date.now(), exp: Date.now() + 60_000 };
      await status.create(e.id, { state: 'sent', target: 'devices', createdAt: Date.now(), exp: e.exp });
      await streams.appendInboxes(['c-offline'], e);
      ids.push(e.id);
    }
    // The device read all three elsewhere (a Web Push) and resumes after them.
    const p = await hello('c-offline', { inbox: 3 });
    expect(p.frames.find((f) => f.type === 'welcome')).toMatchObject({ streams: { inbox: { cursor: 3 } } });
    p.send({ type: 'ack', stream: 'inbox', seq: 3 });
    const deadline = Date.now() + 5000;
    const acked = () => Promise.all(ids.map(async (id) => (await status.get(id))?.counts.acked));
    while (
      ((await cmd.hget(keys.cursors('c-offline'), 'inbox')) !== '3' ||
        (await acked()).some((n) => n !== 1)) &&
      Date.now() < deadline
    )
      await new Promise((r) => setTimeout(r, 20));
    expect(await cmd.hget(keys.cursors('c-offline'), 'inbox')).toBe('3');
    expect(await acked()).toEqual([1, 1, 1]);
    // Acked again: nothing moves twice. Past the stream's last entry: bad_ack.
    p.send({ type: 'ack', stream: 'inbox', seq: 2 });
    p.send({ type: 'ack', stream: 'inbox', seq: 3 });
    p.send({ type: 'ack', stream: 'inbox', seq: 4 });
    expect(await p.frame('error')).toMatchObject({ code: 'bad_ack' });
    await node.flush();
    expect(await acked()).toEqual([1, 1, 1]);
    expect(p.frames.filter((f) => f.type === 'error')).toHaveLength(1);
    p.close();
    // Resumed from an older cursor: 2 and 3 come again, and acking them counts nothing twice.
    const q = await hello('c-offline', { inbox: 1 });
    await q.until(() => q.notifications('inbox').length === 2, 'replay of 2 and 3');
    q.send({ type: 'ack', stream: 'inbox', seq: 3 });
    q.send({ type: 'ping' });
    await q.frame('pong');
    await node.flush();
    expect(await acked()).toEqual([1, 1, 1]);
    q.close();
  });
});

describe('an internal error', () => {
  it('closes with 4500 "internal error" when Redis cannot serve the hello, and the node keeps serving', async () => {
    // The device's topic set holds a string: hello.lua's SMEMBERS fails with WRONGTYPE, a fault
    // of the server, not of the client (docs/protocol.md: 4500, reconnect with backoff).
    await cmd.set(keys.deviceTopics('c-broken'), 'not a set');
    const p = await Probe.open(url);
    p.send({ type: 'hello', token: await token('c-broken') });
    expect(await p.waitClose()).toMatchObject({ code: 4500, reason: 'internal error' });
    await cmd.del(keys.deviceTopics('c-broken'));
    const ok = await hello('c-broken');
    expect(ok.closed).toBeUndefined();
    ok.close();
  });
});
