import { Probe } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { PushService, type TestSubscription, vapidKeys } from '../support/push-service.js';
import { API_KEY, type SystemStack, startSystem } from '../support/system.js';

// The Web Push fallback end to end (docs/webpush.md): API, worker, node, nginx and Redis as
// processes, and a local push service that checks VAPID and decrypts every message (RFC 8291).
const SUBJECT = 'mailto:ops@herald.test';
let sys: SystemStack;
let push: PushService;

async function api<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  auth = `Bearer ${API_KEY}`,
) {
  const res = await fetch(`${sys.apiUrl}${path}`, {
    method,
    headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** Registers a fresh subscription for the device with the device's own token (as a page does). */
async function register(device: string): Promise<TestSubscription> {
  const sub = push.subscribe();
  const res = await api(
    'PUT',
    `/v1/devices/${device}/webpush`,
    { ...sub, id: undefined },
    `Bearer ${await sys.token(device)}`,
  );
  expect(res.status).toBe(200);
  return sub;
}

interface Status {
  counts: { pushed: number; pushFailed: number };
}

async function status(id: string): Promise<Status> {
  return (await api<Status>('GET', `/v1/notifications/${id}`)).body;
}

async function until<T>(f: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function workerMetric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${sys.worker.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

beforeAll(async () => {
  push = await PushService.start();
  const vapid = vapidKeys();
  sys = await startSystem({
    nodes: 1,
    env: {
      HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
      HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
      HERALD_VAPID_SUBJECT: SUBJECT,
      HERALD_WEBPUSH_ALLOW_LOCAL_HTTP: 'true',
      HERALD_WEBPUSH_RETRY_MS: '300',
    },
  });
}, 60_000);
afterAll(async () => {
  await sys?.teardown();
  await push?.stop();
}, 30_000);

describe('Web Push fallback', () => {
  it('pushes to an offline device after `after`, encrypted per RFC 8291, with TTL, Urgency and Topic', async () => {
    const sub = await register('wp-off');
    const sent = Date.now();
    const res = await sys.publish({
      to: { devices: ['wp-off'] },
      data: { order: 42 },
      ttl: 600,
      push: { after: 1, title: 'Order shipped', body: 'On its way', urgency: 'high', topic: 'order-42' },
    });
    expect(res.status).toBe(202);
    await push.waitFor(() => push.pushes(sub.id).length === 1, 'the push', 4000);
    const [p] = push.pushes(sub.id);
    expect(p!.at - sent).toBeGreaterThanOrEqual(1000);
    expect(JSON.parse(p!.text)).toEqual({
      id: res.body.id,
      stream: 'inbox',
      title: 'Order shipped',
      body: 'On its way',
      data: { order: 42 },
    });
    expect(p!.ttl).toBeGreaterThan(590);
    expect(p!.ttl).toBeLessThanOrEqual(600);
    expect(p!.urgency).toBe('high');
    expect(p!.topic).toBe('order-42');
    expect(p!.vapid.sub).toBe(SUBJECT);
    expect((await api('GET', '/v1/webpush/key')).body.publicKey).toBe(p!.vapid.k);
    const s = await until(
      async () => {
        const st = await status(res.body.id as string);
        return st.counts.pushed === 1 ? st : undefined;
      },
      'pushed = 1',
      5000,
    );
    expect(s.counts).toMatchObject({ pushed: 1, pushFailed: 0 });
  });

  it('does not push to a device that acked; pushes to one that got it live but never acked', async () => {
    const acking = await register('wp-acking');
    const stuck = await register('wp-stuck');
    const [a, b] = await Promise.all([sys.connect('wp-acking'), sys.connect('wp-stuck')]);
    const res = await sys.publish({
      to: { devices: ['wp-acking', 'wp-stuck'] },
      data: { x: 1 },
      push: { after: 1 },
    });
    expect(res.status).toBe(202);
    const n = await a.frame('notification', 10_000);
    a.send({ type: 'ack', stream: 'inbox', seq: n.seq });
    await b.frame('notification', 10_000);
    // The stuck tab is pushed; the acking one not, 3x `after` later either.
    await push.waitFor(() => push.pushes(stuck.id).length === 1, 'the stuck device push', 5000);
    await new Promise((r) => setTimeout(r, 3000 - 1000));
    expect(push.attempts.filter((t) => t.sub === acking.id)).toEqual([]);
    expect(JSON.parse(push.pushes(stuck.id)[0]!.text)).toEqual({
      id: res.body.id,
      stream: 'inbox',
      data: { x: 1 },
    });
    a.close();
    b.close();
  });

  it('removes a subscription the push service says is gone (410) and does not retry it', async () => {
    const sub = await register('wp-gone');
    push.script(sub.id, { status: 410 });
    const res = await sys.publish({ to: { devices: ['wp-gone'] }, data: 1, push: { after: 0 } });
    await until(
      async () => ((await status(res.body.id as string)).counts.pushFailed === 1 ? true : undefined),
      'pushFailed = 1',
      5000,
    );
    const view = await api('GET', '/v1/admin/devices/wp-gone');
    expect(view.body.webpush).toEqual([]);
    await new Promise((r) => setTimeout(r, 1500)); // several retry periods (HERALD_WEBPUSH_RETRY_MS=300)
    expect(push.attempts.filter((t) => t.sub === sub.id).map((t) => t.status)).toEqual([410]);
  });

  it('honours Retry-After on a 503, and retries with backoff while the push service is down', async () => {
    const busy = await register('wp-busy');
    push.script(busy.id, { status: 503, headers: { 'retry-after': '2' } });
    const r1 = await sys.publish({ to: { devices: ['wp-busy'] }, data: 'busy', push: { after: 0 } });
    await push.waitFor(() => push.pushes(busy.id).length === 1, 'the push after Retry-After', 8000);
    const tries = push.attempts.filter((t) => t.sub === busy.id);
    expect(tries.map((t) => t.status)).toEqual([503, 201]);
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(2000);
    expect(JSON.parse(push.pushes(busy.id)[0]!.text).id).toBe(r1.body.id);

    const away = await register('wp-away');
    await push.down();
    const retriesBefore = await workerMetric('herald_webpush_sent_total', 'result="retry"');
    const r2 = await sys.publish({ to: { devices: ['wp-away'] }, data: 'later', push: { after: 0 } });
    await until(
      async () =>
        (await workerMetric('herald_webpush_sent_total', 'result="retry"')) >= retriesBefore + 2
          ? true
          : undefined,
      'two refused attempts',
      8000,
    );
    await push.up();
    await push.waitFor(() => push.pushes(away.id).length === 1, 'the push once the service is back', 10_000);
    // The device itself comes back: the notification is on its socket too (the same id).
    const p = await sys.connect('wp-away');
    expect((await p.frame('notification', 10_000)).id).toBe(r2.body.id);
    p.close();
  });

  it('gives up after HERALD_WEBPUSH_MAX_ATTEMPTS, and does not retry for a device that acked meanwhile', async () => {
    const failing = await register('wp-failing');
    const fail = { status: 500 };
    push.script(failing.id, fail, fail, fail, fail, fail, fail);
    const late = await register('wp-late');
    push.script(late.id, { status: 503, headers: { 'retry-after': '3' } });
    const res = await sys.publish({
      to: { devices: ['wp-failing', 'wp-late'] },
      data: 'x',
      push: { after: 0 },
    });
    await push.waitFor(() => push.attempts.some((t) => t.sub === late.id), 'the first attempt', 5000);
    // wp-late comes back and acks before its retry is due: the retry finds the cursor and stops.
    const p = await sys.connect('wp-late');
    const n = await p.frame('notification', 10_000);
    p.send({ type: 'ack', stream: 'inbox', seq: n.seq });
    // 5 attempts at 300, 600, 1200, 2400 ms apart (HERALD_WEBPUSH_RETRY_MS=300), then pushFailed.
    await until(
      async () => ((await status(res.body.id as string)).counts.pushFailed === 1 ? true : undefined),
      'pushFailed = 1',
      15_000,
    );
    expect(push.attempts.filter((t) => t.sub === failing.id).map((t) => t.status)).toEqual([
      500, 500, 500, 500, 500,
    ]);
    const firstLate = push.attempts.find((t) => t.sub === late.id)!.at;
    await new Promise((r) => setTimeout(r, Math.max(0, firstLate + 3500 - Date.now()))); // past its Retry-After
    expect(push.attempts.filter((t) => t.sub === late.id).map((t) => t.status)).toEqual([503]);
    expect((await status(res.body.id as string)).counts).toMatchObject({ pushed: 0, pushFailed: 1 });
    p.close();
  });

  it('pushes exactly the 300 offline devices of a 1,000-device topic, in a few Redis round trips', async () => {
    const topic = 'wp.big';
    const ids = Array.from({ length: 1000 }, (_, i) => `wp-t-${i}`);
    for (let i = 0; i < ids.length; i += 100)
      await Promise.all(ids.slice(i, i + 100).map((d) => api('PUT', `/v1/topics/${topic}/devices/${d}`)));
    const offline = ids.slice(0, 300);
    const online = ids.slice(300);
    const subs = new Map<string, string>();
    for (let i = 0; i < ids.length; i += 100)
      await Promise.all(ids.slice(i, i + 100).map(async (d) => subs.set(d, (await register(d)).id)));
    // 700 devices online, each acking what it gets.
    const sockets: WebSocket[] = [];
    let acked = 0;
    for (let i = 0; i < online.length; i += 50) {
      await Promise.all(
        online.slice(i, i + 50).map(async (d) => {
          const p = await Probe.open(sys.wsUrl);
          p.ws.on('message', (raw) => {
            const f = JSON.parse(String(raw));
            if (f.type === 'notification') {
              p.send({ type: 'ack', stream: f.stream, seq: f.seq });
              acked++;
            }
          });
          p.send({ type: 'hello', token: await sys.token(d) });
          await p.frame('welcome', 10_000);
          sockets.push(p.ws);
        }),
      );
    }
    const callsBefore = await workerMetric('herald_webpush_redis_calls_total');
    const sent = Date.now();
    const res = await sys.publish({ to: { topic }, data: { big: true }, push: { after: 3 } });
    expect(res.status).toBe(202);
    await until(async () => (acked === online.length ? true : undefined), '700 acks', 20_000);
    const offlineSubs = new Set(offline.map((d) => subs.get(d)));
    await push.waitFor(
      () => push.pushes().filter((p) => offlineSubs.has(p.sub)).length === 300,
      '300 pushes',
      30_000,
    );
    const took = Date.now() - sent;
    expect(took).toBeLessThan(30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const pushedTo = new Set(push.pushes().map((p) => p.sub));
    for (const d of online) expect(pushedTo.has(subs.get(d) as string)).toBe(false);
    expect(push.pushes().filter((p) => offlineSubs.has(p.sub)).length).toBe(300);
    // 1,000 members, HERALD_FANOUT_CHUNK 500: a few SSCANs and two or three check scripts, never one per device.
    const calls = (await workerMetric('herald_webpush_redis_calls_total')) - callsBefore;
    console.log(
      `web push: 300 of 1,000 topic members pushed ${took} ms after the publish (after = 3 s), ${calls} Redis calls`,
    );
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(10);
    expect((await status(res.body.id as string)).counts.pushed).toBe(300);
    for (const ws of sockets) ws.close();
  }, 120_000);
});
