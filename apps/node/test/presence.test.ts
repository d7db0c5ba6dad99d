import { Probe, SseReader, startRedis, waitFor } from '@herald/stack';
import {
  createRedis,
  Devices,
  Keys,
  Presence,
  type RedisClient,
  Streams,
  type WebhookEvent,
  WebhookOutbox,
} from '@herald/store';
import { mintDeviceToken } from '@herald/token';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeApp } from '../src/app-scope.js';
import { Hellos } from '../src/hellos.js';
import type { HeraldNode } from '../src/node.js';
import { makeNode, SECRET } from './helpers.js';

/**
 * What a node records for the presence API and the device webhooks, seen in Redis: since and
 * transport per connection, topics' online sets, and the raw device.connect / device.disconnect
 * events in the outbox of an app that wants device webhooks (`NodeApp.webhookEvents`), batched.
 */
const QUIET_SECRET = 'quiet-secret-0123456789';
const APPS: NodeApp[] = [
  { id: 'default', tokens: { secret: SECRET }, webhookEvents: new Set(['device.online', 'device.offline']) },
  { id: 'quiet', tokens: { secret: QUIET_SECRET } },
];
const root = new Keys('herald');

let redis: Awaited<ReturnType<typeof startRedis>>;
let cmd: RedisClient;
let node: HeraldNode;
let base: string;

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  cmd = createRedis(redis.url, 'background');
  node = makeNode(redis.url, {}, { apps: APPS, nodeId: 'node-p' });
  const port = await node.start();
  base = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await node?.stop();
  cmd?.disconnect();
  await redis?.stop();
});

const token = (device: string, app?: string) =>
  mintDeviceToken({
    secret: app === 'quiet' ? QUIET_SECRET : SECRET,
    device,
    user: `user-${device}`,
    ...(app ? { app } : {}),
  });

async function ws(device: string, app?: string): Promise<Probe> {
  const p = await Probe.open(`ws://${base}/v1/ws`);
  p.send({ type: 'hello', token: await token(device, app) });
  await p.frame('welcome', 10_000);
  return p;
}

/** Every event in an app's outbox, and how many entries (XADDs) carried them. */
async function outbox(keys: Keys): Promise<{ entries: number; events: WebhookEvent[] }> {
  const out = new WebhookOutbox(cmd, keys);
  const raw = await cmd.xrange(out.key, '-', '+');
  return {
    entries: raw.length,
    events: raw.flatMap(([, f]) => JSON.parse(f[1] as string) as WebhookEvent[]),
  };
}

describe('presence on a node', () => {
  it('records transport, since and topics; raw connect/disconnect events go to the outbox in batches', async () => {
    const presence = new Presence(cmd, root, 60_000);
    await new Devices(cmd, root, 86_400_000).subscribe('p-ws-0', 'news');
    const t0 = Date.now();
    const probes = await Promise.all(Array.from({ length: 30 }, (_, i) => ws(`p-ws-${i}`)));
    const sse = await SseReader.open(`http://${base}/v1/sse?token=${await token('p-sse')}&topics=news`);
    await sse.event('welcome', 1, 10_000);

    const w = await presence.device('p-ws-0');
    expect(w).toMatchObject({ online: true, nodes: [{ id: 'node-p', transport: 'websocket' }] });
    expect(w.since).toBeGreaterThanOrEqual(t0 - 5);
    expect((await presence.device('p-sse')).nodes).toMatchObject([{ id: 'node-p', transport: 'sse' }]);
    await waitFor(async () => (await presence.topicCount('news')) === 2, {
      what: 'news online',
      timeoutMs: 5000,
    });

    let box = await outbox(root);
    const connects = box.events.filter((e) => e.type === 'device.connect');
    expect(connects).toHaveLength(31);
    // At most one XADD per turn of hellos (hellos.ts): never more entries than hellos.
    expect(box.entries).toBeLessThanOrEqual(31);
    expect(connects.find((e) => e.data.device === 'p-sse')?.data).toEqual({
      device: 'p-sse',
      user: 'user-p-sse',
      node: 'node-p',
      transport: 'sse',
    });
    expect(new Set(connects.map((e) => e.id)).size).toBe(31);

    for (const p of probes) p.close();
    sse.close();
    await waitFor(
      async () => (await outbox(root)).events.filter((e) => e.type === 'device.disconnect').length === 31,
      {
        what: 'disconnect events',
        intervalMs: 200,
        timeoutMs: 5000,
      },
    );
    box = await outbox(root);
    expect(
      box.events.find((e) => e.type === 'device.disconnect' && e.data.device === 'p-ws-3')?.data,
    ).toEqual({
      device: 'p-ws-3',
      user: 'user-p-ws-3',
      node: 'node-p',
      transport: 'websocket',
    });
    const gone = await presence.device('p-ws-0');
    expect(gone.online).toBe(false);
    expect(gone.seen).toBeGreaterThanOrEqual(t0);
    expect(await presence.topicCount('news')).toBe(0);
  }, 20_000);

  it('gathers the hellos and closes of one turn into one outbox entry, sent with their presence writes', async () => {
    const keys = root.forApp('batch');
    const devices = new Devices(cmd, keys, 86_400_000);
    const out = new WebhookOutbox(cmd, keys);
    const hellos = new Hellos(
      devices,
      new Presence(cmd, keys, 60_000),
      new Streams(cmd, keys, { inboxMaxLen: 0, topicMaxLen: 0, keepMs: 0 }),
      keys,
      'node-b',
      60_000,
      () => out,
    );
    await Promise.all(Array.from({ length: 200 }, (_, i) => hellos.open(`b-${i}`, 'u', '', 'poll')));
    let box = await outbox(keys);
    expect(box.entries).toBe(1);
    expect(box.events).toHaveLength(200);
    expect(box.events[0]).toMatchObject({
      type: 'device.connect',
      data: { device: 'b-0', transport: 'poll' },
    });
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => hellos.close(`b-${i}`, { user: 'u', transport: 'poll' })),
    );
    box = await outbox(keys);
    expect(box.entries).toBe(2);
    expect(box.events.filter((e) => e.type === 'device.disconnect')).toHaveLength(200);
  });

  it('records no event for an app that wants no device webhooks', async () => {
    const p = await ws('q-1', 'quiet');
    expect((await new Presence(cmd, root.forApp('quiet'), 0).device('q-1')).online).toBe(true);
    p.close();
    await waitFor(async () => !(await new Presence(cmd, root.forApp('quiet'), 0).device('q-1')).online, {
      what: 'q-1 gone',
      timeoutMs: 5000,
    });
    expect(await cmd.exists(root.forApp('quiet').webhookEvents())).toBe(0);
  });
});
