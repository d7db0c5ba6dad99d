import { type Probe, SseReader, waitFor } from '@herald/stack';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, loopback, type SystemStack, startSystem } from '../support/system.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * The presence API and the debounced device webhooks, with real processes: devices connected
 * through nginx over WebSocket and SSE, the API answering from what the nodes wrote, and the
 * worker's debouncer turning the raw connect/disconnect events the nodes record into
 * device.online / device.offline, which the worker's sender posts, signed, to a local endpoint
 * (HERALD_WEBHOOKS) that verifies them with `standardwebhooks`.
 */
let sys: SystemStack;
let redis: Redis;
let hooks: WebhookReceiver;
/** HERALD_PRESENCE_DEBOUNCE_MS, short to keep the test fast. */
const WINDOW_MS = 1500;
/** How long after a window an announcement may take to reach the endpoint (see its use). */
const MARGIN_MS = 1500;

beforeAll(async () => {
  hooks = await WebhookReceiver.start();
  sys = await startSystem({
    nodes: 2,
    env: {
      HERALD_PRESENCE_DEBOUNCE_MS: String(WINDOW_MS),
      HERALD_WEBHOOKS: JSON.stringify([
        { id: 'devices', url: hooks.url, events: ['device.online', 'device.offline'], secret: hooks.secret },
      ]),
    },
  });
  redis = new Redis(sys.redisUrl);
}, 90_000);
afterAll(async () => {
  redis?.disconnect();
  await sys?.teardown();
  await hooks?.stop();
}, 60_000);

const httpBase = () => sys.wsUrl.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');

async function get(
  path: string,
  key = API_KEY,
): Promise<{ status: number; json: Record<string, unknown>; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${sys.apiUrl}${path}`, {
    headers: { authorization: `Bearer ${key}` },
    signal: AbortSignal.timeout(10_000),
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, json, ms: performance.now() - t0 };
}

async function sse(device: string, user: string, topics = ''): Promise<SseReader> {
  const token = await sys.token(device, user);
  const r = await SseReader.open(
    `${httpBase()}/v1/sse?token=${token}${topics ? `&topics=${topics}` : ''}`,
    {},
    loopback(3),
  );
  await r.event('welcome', 1, 10_000);
  return r;
}

const online = async (device: string) => (await get(`/v1/devices/${device}`)).json.online === true;

describe('presence API', () => {
  it('shows devices connected over WebSocket and SSE: node, since, transport, last seen; a user page by page', async () => {
    const t0 = Date.now();
    const put = await fetch(`${sys.apiUrl}/v1/topics/room/devices/pa-ws`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(put.status).toBe(204);
    const ws = await sys.connect('pa-ws', { user: 'alice', localAddress: loopback(1) });
    const reader = await sse('pa-sse', 'alice', 'room');

    const a = await get('/v1/devices/pa-ws');
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ device: 'pa-ws', online: true, transport: 'websocket' });
    expect(a.json.node).toMatch(/\S/);
    expect(a.json.nodes).toEqual([{ id: a.json.node, since: a.json.since, transport: 'websocket' }]);
    expect(Date.parse(a.json.since as string)).toBeGreaterThanOrEqual(t0 - 1000);
    expect(Date.parse(a.json.lastSeen as string)).toBeGreaterThanOrEqual(t0);
    expect((await get('/v1/devices/pa-sse')).json).toMatchObject({ online: true, transport: 'sse' });
    expect((await get('/v1/devices/pa-never')).json).toMatchObject({
      online: false,
      node: null,
      nodes: [],
      since: null,
      transport: null,
      lastSeen: null,
    });

    // Alice's two devices, one per page.
    const p1 = await get('/v1/users/alice/devices?limit=1');
    expect(p1.status).toBe(200);
    expect(p1.json.devices).toHaveLength(1);
    expect(typeof p1.json.cursor).toBe('string');
    const p2 = await get(`/v1/users/alice/devices?limit=1&cursor=${p1.json.cursor}`);
    const both = [...(p1.json.devices as { device: string }[]), ...(p2.json.devices as { device: string }[])];
    expect(both.map((d) => d.device).sort()).toEqual(['pa-sse', 'pa-ws']);
    expect(both.every((d) => (d as unknown as { online: boolean }).online)).toBe(true);

    // The topic room: both, the one subscribed durably and the SSE one by its ?topics.
    await waitFor(async () => (await get('/v1/topics/room/presence')).json.count === 2, {
      what: 'room count 2',
    });
    expect(((await get('/v1/topics/room/presence')).json.devices as string[]).sort()).toEqual([
      'pa-sse',
      'pa-ws',
    ]);

    // Gone: offline, last seen at its disconnect; out of the topic's count.
    ws.close();
    reader.close();
    await waitFor(async () => !(await online('pa-ws')) && !(await online('pa-sse')), {
      what: 'both offline',
    });
    const gone = await get('/v1/devices/pa-ws');
    expect(gone.json).toMatchObject({ online: false, node: null, nodes: [], since: null, transport: null });
    expect(Date.parse(gone.json.lastSeen as string)).toBeGreaterThanOrEqual(
      Date.parse(a.json.since as string),
    );
    expect((await get('/v1/topics/room/presence')).json.count).toBe(0);
  }, 30_000);

  it('counts and pages a topic of 10,000 online members, each page within 200 ms', async () => {
    // 10,000 members online as the nodes record them (the topic's online set), and real devices.
    const exp = Date.now() + 60_000;
    const args: (string | number)[] = [];
    for (let i = 0; i < 10_000; i++) args.push(exp, `bulk-${i}`);
    await redis.zadd('herald:{t:big}:online', ...args);
    await redis.pexpire('herald:{t:big}:online', 60_000);
    const real = [await sse('big-sse', 'bob', 'big'), await sse('big-sse-2', 'bob', 'big')];
    await waitFor(async () => (await get('/v1/topics/big/presence?limit=1')).json.count === 10_002, {
      what: 'big count',
    });
    const seen = new Set<string>();
    const times: number[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 50; pages++) {
      const r = await get(`/v1/topics/big/presence?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      expect((r.json.devices as string[]).length).toBeLessThanOrEqual(1000);
      for (const d of r.json.devices as string[]) seen.add(d);
      times.push(r.ms);
      cursor = r.json.cursor as string | null;
      if (cursor === null) break;
    }
    expect(cursor).toBeNull();
    expect(seen.size).toBe(10_002);
    expect(seen.has('big-sse')).toBe(true);
    // The median page: one ZCOUNT and one ZSCAN of ~1,000 (a single slow page on the shared box is tolerated).
    times.sort((x, y) => x - y);
    expect(times[Math.floor(times.length / 2)]).toBeLessThan(200);
    for (const r of real) r.close();
  }, 30_000);

  it('refuses bad ids, limits and cursors with 400 naming the field, and a key without presence:read with 403', async () => {
    for (const [path, field] of [
      ['/v1/devices/bad%20id', /device/],
      ['/v1/users/bad%20user/devices', /user/],
      ['/v1/topics/bad..topic/presence', /topic/],
      ['/v1/topics/room/presence?limit=0', /limit/],
      ['/v1/topics/room/presence?limit=1001', /limit/],
      ['/v1/users/alice/devices?limit=101', /limit/],
      ['/v1/topics/room/presence?cursor=abc', /cursor/],
      ['/v1/users/alice/devices?cursor=1.x', /cursor/],
      ['/v1/topics/room/presence?page=2', /page/],
    ] as const) {
      const r = await get(path);
      expect(r.status, path).toBe(400);
      expect(r.json.code, path).toBe('HERALD_BAD_REQUEST');
      expect(r.json.message, path).toMatch(field);
    }
    const created = await fetch(`${sys.apiUrl}/v1/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scopes: ['publish'], name: 'publisher' }),
    });
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    for (const path of ['/v1/devices/d1', '/v1/users/u1/devices', '/v1/topics/room/presence']) {
      const r = await get(path, key);
      expect(r.status, path).toBe(403);
      expect(r.json.code).toBe('HERALD_FORBIDDEN_SCOPE');
      expect(r.json.message).toMatch(/presence:read/);
    }
  });
});

describe('device.online / device.offline', () => {
  type Seen = { type: string; device: string; at: number };
  /** The receiver's device events of the devices of this test, in arrival order. */
  const seen = (): Seen[] =>
    hooks.events
      .filter((e) => e.type.startsWith('device.') && String(e.data.device).startsWith('ev-'))
      .map((e) => ({ type: e.type, device: String(e.data.device), at: Date.parse(e.timestamp) }));
  const names = () => seen().map((e) => `${e.type} ${e.device}`);
  const arrived = (name: string) =>
    waitFor(async () => names().includes(name), { what: name, timeoutMs: WINDOW_MS + 8000 });
  const connect = (device: string) => sys.connect(device, { user: 'carol', localAddress: loopback(5) });
  /** Closes the connection and waits until the presence API shows the device gone (the node saw it). */
  const drop = async (device: string, p: Probe) => {
    p.close();
    await waitFor(async () => !(await online(device)), { what: `${device} offline`, timeoutMs: 5000 });
  };
  /** The debouncer's devices due offline (keys.ts presenceDue): the debouncer has applied their disconnect. */
  const due = (device: string) =>
    waitFor(async () => (await redis.zscore('herald:{wh}:presence:due', device)) !== null, {
      what: `${device} due offline`,
      intervalMs: 20,
      timeoutMs: 5000,
    });

  it('nodes record connects and disconnects; the endpoint gets signed device.online/offline, none for a reconnect within the window', async () => {
    const flap = await connect('ev-flap');
    const away = await connect('ev-away');
    await arrived('device.online ev-flap');
    await arrived('device.online ev-away');
    const first = hooks.events.find((e) => e.type === 'device.online' && e.data.device === 'ev-flap');
    expect(first?.data).toMatchObject({ device: 'ev-flap', user: 'carol', transport: 'websocket' });
    expect(first?.data.node).toMatch(/\S/);

    // ev-flap drops and is back within the window, after the debouncer has seen it go (so the
    // reconnect is what cancels the offline, not two events read in one step); ev-away drops for good.
    const flapDroppedAt = Date.now();
    await drop('ev-flap', flap);
    await due('ev-flap');
    const flap2 = await connect('ev-flap');
    expect(Date.now() - flapDroppedAt, 'the reconnect came within the window').toBeLessThan(WINDOW_MS);
    await drop('ev-away', away);
    await arrived('device.offline ev-away');
    // The one wait for something that must NOT come: ev-flap's window ended before ev-away's
    // (it dropped first), so the debouncer step that announced ev-away would have announced
    // ev-flap too; MARGIN_MS covers that event's way to the endpoint (a debouncer step and a pump
    // poll of 250 ms each, and its request possibly running beside the other on the endpoint).
    const quietUntil = flapDroppedAt + WINDOW_MS + MARGIN_MS;
    await new Promise((r) => setTimeout(r, Math.max(0, quietUntil - Date.now())));
    // The two onlines (in either order), then ev-away's offline only.
    expect(names().slice(0, 2).sort()).toEqual(['device.online ev-away', 'device.online ev-flap']);
    expect(names().slice(2)).toEqual(['device.offline ev-away']);

    // ev-flap now stays away: offline once its window is over, after its one online.
    const goneAt = Date.now();
    await drop('ev-flap', flap2);
    await arrived('device.offline ev-flap');
    expect(names().filter((n) => n.endsWith(' ev-flap'))).toEqual([
      'device.online ev-flap',
      'device.offline ev-flap',
    ]);
    const off = seen().find((e) => e.type === 'device.offline' && e.device === 'ev-flap');
    // Its timestamp is the disconnect's, not the announcement's.
    expect(off?.at).toBeGreaterThanOrEqual(goneAt - 1000);
    expect(off?.at).toBeLessThan(goneAt + WINDOW_MS);
    // Every request verified by standardwebhooks; each event once.
    expect(hooks.badSignatures).toBe(0);
    expect(hooks.uniqueIds().size).toBe(hooks.events.length);
  }, 40_000);
});
