import { randomUUID } from 'node:crypto';
import { REDIS_MODES } from '@herald/stack';
import {
  createRedis,
  Devices,
  Keys,
  Presence,
  type RedisClient,
  type WebhookEvent,
  WebhookOutbox,
} from '@herald/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceDebouncer } from '../src/presence/debouncer.js';

let n = 0;
const WINDOW = 5000;
const TTL = 60_000;

/** One Redis, and a Cluster: the debouncer's state shares the outbox's slot (`{wh}`), devices live in theirs. */

describe.each(REDIS_MODES)('presence debouncer on $name', (mode) => {
  let server: { url: string; stop(): Promise<unknown> };
  let redis: RedisClient;

  beforeAll(async () => {
    server = await mode.start();
    redis = createRedis(server.url, 'background');
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  /**
   * A fresh app: what nodes write (presence through the store, raw events into the outbox, as
   * hellos.ts does) and what a webhook sender would read (its own group on the outbox).
   */
  async function app() {
    const keys = new Keys(`pr${++n}`).forApp('shop');
    const outbox = new WebhookOutbox(redis, keys);
    await outbox.ensureGroup('sender');
    const devices = new Devices(redis, keys, 86_400_000);
    const presence = new Presence(redis, keys, TTL);
    const raw = (
      type: 'device.connect' | 'device.disconnect',
      device: string,
      node: string,
      ts = Date.now(),
    ) =>
      ({
        id: randomUUID(),
        type,
        ts,
        data: { device, user: 'u1', node, transport: 'websocket' },
      }) as WebhookEvent;
    return {
      keys,
      debouncer: (consumer = 'w1') =>
        new PresenceDebouncer({ redis, keys, windowMs: WINDOW, consumer, reclaimIdleMs: 0 }),
      async connect(device: string, node: string, ts?: number) {
        await devices.connect([{ device, user: 'u1', transport: 'websocket' }], node, TTL);
        await outbox.append([raw('device.connect', device, node, ts)]);
      },
      async disconnect(device: string, node: string, ts?: number) {
        await presence.removeMany([device], node);
        await outbox.append([raw('device.disconnect', device, node, ts)]);
      },
      /** Public events appended since the last call. */
      async published(): Promise<WebhookEvent[]> {
        const entries = await outbox.read('sender', 's1', 1000);
        await outbox.ack(
          'sender',
          entries.map((e) => e.id),
        );
        return entries
          .flatMap((e) => e.events)
          .filter((e) => e.type === 'device.online' || e.type === 'device.offline');
      },
    };
  }

  const summary = (events: WebhookEvent[]) => events.map((e) => `${e.type} ${e.data.device}`);

  it('announces a first connect, hides a reconnect within the window, and announces one that stays away after it', async () => {
    const a = await app();
    const db = a.debouncer();
    const t0 = Date.now();
    await a.connect('d1', 'n1', t0);
    await db.step(t0);
    const online = await a.published();
    expect(summary(online)).toEqual(['device.online d1']);
    expect(online[0]!.data).toEqual({ device: 'd1', user: 'u1', node: 'n1', transport: 'websocket' });
    expect(online[0]!.id).toMatch(/^[0-9a-f-]{36}$/);

    // Drops and comes back within the window: nothing, even once the window has passed.
    await a.disconnect('d1', 'n1', t0 + 100);
    await db.step(t0 + 200);
    await a.connect('d1', 'n1', t0 + 1000);
    await db.step(t0 + 1100);
    await db.step(t0 + WINDOW + 2000);
    expect(await a.published()).toEqual([]);

    // Drops and stays away: offline once the window is over, not before, with the disconnect's time.
    await a.disconnect('d1', 'n1', t0 + 3000);
    await db.step(t0 + 3000 + WINDOW - 10);
    expect(await a.published()).toEqual([]);
    await db.step(t0 + 3000 + WINDOW + 10);
    const offline = await a.published();
    expect(summary(offline)).toEqual(['device.offline d1']);
    expect(offline[0]!.ts).toBe(t0 + 3000);

    // Back after the offline: online again.
    await a.connect('d1', 'n2', t0 + 20_000);
    await db.step(t0 + 20_000);
    expect(summary(await a.published())).toEqual(['device.online d1']);
  });

  it('a device on two nodes is offline only when its last connection is gone', async () => {
    const a = await app();
    const db = a.debouncer();
    const t0 = Date.now();
    await a.connect('d2', 'n1', t0);
    await a.connect('d2', 'n2', t0 + 10);
    await db.step(t0 + 20);
    expect(summary(await a.published())).toEqual(['device.online d2']);
    await a.disconnect('d2', 'n1', t0 + 100);
    await db.step(t0 + 100 + WINDOW + 10);
    expect(await a.published()).toEqual([]);
    await a.disconnect('d2', 'n2', t0 + 200);
    await db.step(t0 + 200 + WINDOW + 10);
    expect(summary(await a.published())).toEqual(['device.offline d2']);
  });

  it('survives a restart: a new worker finishes what the last one read, from the state in Redis', async () => {
    const a = await app();
    const t0 = Date.now();
    await a.connect('d3', 'n1', t0);
    await a.debouncer('w1').step(t0);
    expect(summary(await a.published())).toEqual(['device.online d3']);
    await a.disconnect('d3', 'n1', t0 + 100);
    // w1 reads the disconnect and dies before acking it (its step never ran to the end).
    await new WebhookOutbox(redis, a.keys).read('presence', 'w1', 10);
    const w2 = a.debouncer('w2');
    await w2.step(t0 + 200);
    await w2.step(t0 + 100 + WINDOW + 10);
    expect(summary(await a.published())).toEqual(['device.offline d3']);
    // The state is gone with the offline (bounded by the devices online).
    expect(await redis.hlen(a.keys.presenceAnnounced())).toBe(0);
    expect(await redis.zcard(a.keys.presenceDue())).toBe(0);
  });

  it('a device whose node died without a disconnect goes offline once its presence ran out', async () => {
    const a = await app();
    const db = a.debouncer();
    const t0 = Date.now();
    await a.connect('d4', 'n1', t0);
    await db.step(t0);
    expect(summary(await a.published())).toEqual(['device.online d4']);
    // The node is gone: nothing refreshes its presence, which runs out after TTL.
    await db.step(t0 + TTL + 1000);
    await db.step(t0 + TTL + 1100);
    expect(summary(await a.published())).toEqual(['device.offline d4']);
  });
});
