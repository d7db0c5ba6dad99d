import { startRedis } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedis,
  Keys,
  OUTBOX_BATCH,
  type RedisClient,
  type WebhookEvent,
  WebhookOutbox,
} from '../src/index.js';

let server: { url: string; stop(): Promise<unknown> };
let redis: RedisClient;
const keys = new Keys('ev');

const ev = (n: number): WebhookEvent => ({
  id: `e${n}`,
  type: 'notification.delivered',
  ts: n,
  data: { notification: `n${n}`, device: 'd1', stream: 'inbox', seq: n },
});

describe('WebhookOutbox', () => {
  beforeAll(async () => {
    server = await startRedis({ appendonly: false });
    redis = createRedis(server.url, 'background');
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('gives every group every event once, in batches, and reclaims what a dead consumer held', async () => {
    const out = new WebhookOutbox(redis, keys);
    await out.ensureGroup('send');
    await out.ensureGroup('send'); // a second create is harmless
    await out.ensureGroup('presence');
    const events = Array.from({ length: OUTBOX_BATCH + 10 }, (_, i) => ev(i));
    await out.append(events);
    const first = await out.read('send', 'c1', 10);
    expect(first.map((e) => e.events.length)).toEqual([OUTBOX_BATCH, 10]);
    expect(first.flatMap((e) => e.events).map((e) => e.id)).toEqual(events.map((e) => e.id));
    // Another group reads the same entries independently.
    expect((await out.read('presence', 'p1', 10)).flatMap((e) => e.events)).toHaveLength(events.length);
    // c1 died holding them: c2 takes them over once idle.
    const claimed = await out.reclaim('send', 'c2', 0, 10);
    expect(claimed.map((e) => e.id)).toEqual(first.map((e) => e.id));
    await out.ack(
      'send',
      claimed.map((e) => e.id),
    );
    expect(await out.reclaim('send', 'c2', 0, 10)).toEqual([]);
    expect(await out.read('send', 'c1', 10)).toEqual([]);
  });

  it('keeps apps apart', async () => {
    const a = new WebhookOutbox(redis, keys.forApp('shop'));
    const b = a.withKeys(keys.forApp('blog'));
    expect(a.key).not.toBe(b.key);
    await a.ensureGroup('g');
    await b.ensureGroup('g');
    await a.append([ev(1)]);
    expect(await b.read('g', 'c', 10)).toEqual([]);
    expect((await a.read('g', 'c', 10))[0]?.events[0]?.id).toBe('e1');
  });
});
