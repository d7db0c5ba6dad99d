import { waitFor } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppDevice, pool } from '../support/devices.js';
import { PushService, vapidKeys } from '../support/push-service.js';
import { API_KEY, loopback, type SystemStack, startSystem } from '../support/system.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

// Webhooks (docs/webhooks.md, issue #17): API, worker, two nodes, nginx and Redis as processes;
// four local endpoints in HERALD_WEBHOOKS, each verifying every signature with `standardwebhooks`:
// - main: delivered + acked of 1,000 notifications to 50 devices, then down for OUTAGE_MS;
// - fast and slow (5 s per request): delivered; the slow one must not delay the fast one;
// - failing: expired only, answers 500 until its request is dead-lettered, then is replayed;
// - pushes: notification.pushed / push.failed from Web Push to the local push service.
// Retries are shortened (5 attempts from 1.4 s: 1.4 + 2.8 + 5.6 + 11.2 = 21 s of backoff, so a
// request outlives the 20 s outage), the breaker opens after 3 failures for 1 s.

const OUTAGE_MS = 20_000;
const DEVICES = 50;
const NOTIFICATIONS = 1000;

let sys: SystemStack;
let devices: AppDevice[] = [];
const main = { r: undefined as unknown as WebhookReceiver };
let fast: WebhookReceiver;
let slow: WebhookReceiver;
let failing: WebhookReceiver;
let pushes: WebhookReceiver;
let pushService: PushService;

async function call(method: string, url: string, body?: unknown) {
  const res = await fetch(`${sys.apiUrl}${url}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

/** (notification, device) pairs of a receiver's events of one type. */
const pairs = (r: WebhookReceiver, type: string) =>
  new Set(
    r.events
      .filter((e) => e.type === type)
      .map((e) => `${String(e.data.notification)}/${String(e.data.device)}`),
  );

/** Publishes `n` notifications, item i to device i % DEVICES, in batches of 100; returns their ids. */
async function publishMany(n: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let b = 0; b < n; b += 100) {
    const items = Array.from({ length: Math.min(100, n - b) }, (_, i) => ({
      to: { devices: [`wh-dev-${(b + i) % DEVICES}`] },
      data: { tag, i: b + i },
    }));
    const res = await call('POST', '/v1/notifications/batch', { notifications: items });
    expect(res.status).toBe(202);
    for (const r of res.body.results as { id: string }[]) ids.push(r.id);
  }
  return ids;
}

beforeAll(async () => {
  [main.r, fast, slow, failing, pushes] = await Promise.all([
    WebhookReceiver.start(),
    WebhookReceiver.start(),
    WebhookReceiver.start(),
    WebhookReceiver.start(),
    WebhookReceiver.start(),
  ]);
  pushService = await PushService.start();
  const vapid = vapidKeys();
  slow.mode = 'slow';
  failing.mode = 'fail';
  const hooks = [
    {
      id: 'main',
      url: main.r.url,
      events: ['notification.delivered', 'notification.acked'],
      secret: main.r.secret,
    },
    { id: 'fast', url: fast.url, events: ['notification.delivered'], secret: fast.secret },
    { id: 'slow', url: slow.url, events: ['notification.delivered'], secret: slow.secret },
    { id: 'failing', url: failing.url, events: ['notification.expired'], secret: failing.secret },
    { id: 'pushes', url: pushes.url, events: ['notification.pushed', 'push.failed'], secret: pushes.secret },
  ];
  sys = await startSystem({
    nodes: 2,
    env: {
      HERALD_WEBHOOKS: JSON.stringify(hooks),
      HERALD_WEBHOOK_MAX_ATTEMPTS: '5',
      HERALD_WEBHOOK_RETRY_MS: '1400',
      HERALD_WEBHOOK_BREAKER_FAILURES: '3',
      HERALD_WEBHOOK_BREAKER_COOLDOWN_MS: '1000',
      HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
      HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
      HERALD_VAPID_SUBJECT: 'mailto:ops@herald.test',
      HERALD_WEBPUSH_ALLOW_LOCAL_HTTP: 'true',
    },
  });
  devices = Array.from(
    { length: DEVICES },
    (_, i) => new AppDevice(`wh-dev-${i}`, sys.wsUrl, () => sys.token(`wh-dev-${i}`), loopback(i)),
  );
  await pool(devices, 25, (d) => d.client.connect());
}, 60_000);

afterAll(async () => {
  await Promise.all(devices.map((d) => d.client.close().catch(() => {})));
  await sys?.teardown();
  await Promise.all([main.r, fast, slow, failing, pushes].map((r) => r?.stop()));
  await pushService?.stop();
});

describe('webhooks', () => {
  it('lists the endpoints without their secrets', async () => {
    const res = await call('GET', '/v1/admin/webhooks');
    expect(res.status).toBe(200);
    const endpoints = res.body.endpoints as Record<string, unknown>[];
    expect(endpoints.map((e) => e.id)).toEqual(['main', 'fast', 'slow', 'failing', 'pushes']);
    expect(endpoints[0]).toEqual({
      id: 'main',
      url: main.r.url,
      events: ['notification.delivered', 'notification.acked'],
      key: null,
    });
    expect(JSON.stringify(res.body)).not.toContain('whsec_');
  });

  it('sends delivered and acked events of 1,000 notifications to 50 devices, batched and signed; a slow endpoint does not hold a fast one', async () => {
    // One notification to a device that never connects: expired after 1 s, for `failing`.
    const lost = await sys.publish({ to: { devices: ['wh-never'] }, data: {}, ttl: 1 });
    expect(lost.status).toBe(202);
    const started = Date.now();
    const ids = await publishMany(NOTIFICATIONS, 'one');
    await Promise.all(
      devices.map((d) => d.until(() => d.seen.length >= NOTIFICATIONS / DEVICES, 'all', 20_000)),
    );
    await waitFor(() => pairs(fast, 'notification.delivered').size >= NOTIFICATIONS, {
      timeoutMs: 15_000,
      what: 'fast endpoint: every delivered event',
    });
    const fastDone = Date.now() - started;
    // The slow endpoint (5 s a request, 4 at a time) is far behind when the fast one has it all.
    expect(slow.uniqueIds().size).toBeLessThan(NOTIFICATIONS);
    expect(fastDone).toBeLessThan(12_000);
    await waitFor(
      () =>
        pairs(main.r, 'notification.delivered').size >= NOTIFICATIONS &&
        pairs(main.r, 'notification.acked').size >= NOTIFICATIONS,
      { timeoutMs: 15_000, what: 'main endpoint: every delivered and acked event' },
    );
    const expected = new Set(ids.map((id, i) => `${id}/wh-dev-${i % DEVICES}`));
    expect(pairs(main.r, 'notification.delivered')).toEqual(expected);
    expect(pairs(main.r, 'notification.acked')).toEqual(expected);
    // Acked events carry the entry's seq, WebSocket acks of entries sent live included: the one
    // its delivered event has.
    const seqs = (type: string) =>
      new Map(
        main.r.events
          .filter((e) => e.type === type)
          .map((e) => [`${String(e.data.notification)}/${String(e.data.device)}`, e.data.seq]),
      );
    const delivered = seqs('notification.delivered');
    for (const [pair, seq] of seqs('notification.acked')) {
      expect(typeof seq, pair).toBe('number');
      expect(seq, pair).toBe(delivered.get(pair));
    }
    // At least once, once after dedupe by event id: one id per (type, notification, device).
    expect(main.r.uniqueIds().size).toBe(2 * NOTIFICATIONS);
    // Batched: far fewer requests than events.
    expect(main.r.requests.length).toBeLessThan(main.r.events.length / 5);
    for (const r of [main.r, fast, slow, failing]) expect(r.badSignatures).toBe(0);
  }, 40_000);

  it(`loses nothing while an endpoint is down for ${OUTAGE_MS / 1000} s`, async () => {
    await main.r.down();
    const ids = await publishMany(200, 'outage');
    await Promise.all(
      devices.map((d) => d.until(() => d.seen.length >= (NOTIFICATIONS + 200) / DEVICES, 'outage', 20_000)),
    );
    // The outage is the test's schedule, not a wait for an outcome.
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await main.r.up();
    const want = new Set(ids.map((id, i) => `${id}/wh-dev-${i % DEVICES}`));
    const got = (type: string) => [...want].filter((p) => pairs(main.r, type).has(p)).length;
    await waitFor(
      () => got('notification.delivered') === want.size && got('notification.acked') === want.size,
      {
        timeoutMs: 20_000,
        what: 'main endpoint: the events of the outage',
      },
    );
    expect(main.r.badSignatures).toBe(0);
  }, 60_000);

  it('reports Web Push outcomes: pushed, and failed with the reason', async () => {
    const subs = [];
    for (const device of ['wh-away-1', 'wh-away-2']) {
      const sub = pushService.subscribe();
      const res = await fetch(`${sys.apiUrl}/v1/devices/${device}/webpush`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${await sys.token(device)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...sub, id: undefined }),
      });
      expect(res.status).toBe(200);
      subs.push(sub);
    }
    pushService.script(subs[1]!.id, { status: 410 });
    const res = await sys.publish({
      to: { devices: ['wh-away-1', 'wh-away-2'] },
      data: {},
      push: { after: 0 },
    });
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    await waitFor(() => pushes.events.filter((e) => e.data.notification === id).length >= 2, {
      timeoutMs: 10_000,
      what: 'pushed and failed events',
    });
    const mine = pushes.events.filter((e) => e.data.notification === id);
    expect(mine.find((e) => e.type === 'notification.pushed')?.data).toMatchObject({ device: 'wh-away-1' });
    expect(mine.find((e) => e.type === 'push.failed')?.data).toMatchObject({
      device: 'wh-away-2',
      status: 410,
      reason: 'subscription gone',
    });
    expect(pushes.badSignatures).toBe(0);
  });

  it('dead-letters a request an endpoint keeps refusing, and replays it', async () => {
    let dead: {
      id: string;
      endpoint: string;
      attempts: number;
      error: string;
      events: { type: string; data: Record<string, unknown> }[];
    }[] = [];
    await waitFor(
      async () => {
        const res = await call('GET', '/v1/admin/webhooks/dead-letters?limit=10');
        dead = (res.body.deadLetters ?? []) as typeof dead;
        return dead.length > 0;
      },
      { timeoutMs: 30_000, what: 'a dead letter' },
    );
    const [letter] = dead;
    expect(letter).toMatchObject({ endpoint: 'failing', attempts: 5, error: 'HTTP 500' });
    expect(letter!.events[0]).toMatchObject({
      type: 'notification.expired',
      data: { missed: 1, targets: 1 },
    });
    expect(failing.failed).toBeGreaterThanOrEqual(5);

    expect((await call('GET', '/v1/admin/webhooks/dead-letters?limit=1000')).status).toBe(400);
    const missing = await call('POST', '/v1/admin/webhooks/dead-letters/msg_nope/replay');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('HERALD_NOT_FOUND');

    failing.mode = 'ok';
    const replayed = await call('POST', `/v1/admin/webhooks/dead-letters/${letter!.id}/replay`);
    expect(replayed.status).toBe(202);
    expect(replayed.body.replayed).toBe(1);
    await waitFor(() => failing.requests.includes(letter!.id), {
      timeoutMs: 10_000,
      what: 'the replayed request',
    });
    expect(failing.events.find((e) => e.type === 'notification.expired')?.data.missed).toBe(1);
    expect(failing.badSignatures).toBe(0);
  }, 40_000);
});
