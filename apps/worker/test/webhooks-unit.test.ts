import type { WebhookEndpoint } from '@herald/config';
import type { WebhookEvent } from '@herald/store';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { requestBody } from '../src/webhooks/body.js';
import { EndpointGate } from '../src/webhooks/gate.js';
import { chunks, EventRouter } from '../src/webhooks/router.js';
import { signRequest } from '../src/webhooks/signer.js';

// The parts of the webhook sender that need no process (docs/webhooks.md): signing as the
// `standardwebhooks` package verifies it, the breaker and concurrency gate, routing by key.

const SECRET = `whsec_${Buffer.from('0123456789abcdef01234567').toString('base64')}`;

describe('signRequest', () => {
  it('signs so that standardwebhooks verifies, and a changed body or secret does not', () => {
    const events: WebhookEvent[] = [
      { id: 'evt_1', type: 'notification.acked', ts: Date.now(), data: { notification: 'n1', device: 'd1' } },
    ];
    const body = requestBody(events);
    const headers = signRequest(SECRET, 'msg_1', body);
    expect(headers['webhook-id']).toBe('msg_1');
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const payload = new Webhook(SECRET).verify(body, { ...headers }) as { type: string; events: unknown[] };
    expect(payload).toEqual({
      type: 'batch',
      events: [
        {
          id: 'evt_1',
          type: 'notification.acked',
          timestamp: new Date(events[0]!.ts).toISOString(),
          data: { notification: 'n1', device: 'd1' },
        },
      ],
    });
    expect(() => new Webhook(SECRET).verify(`${body} `, { ...headers })).toThrow();
    const other = `whsec_${Buffer.from('another-secret-0123456789').toString('base64')}`;
    expect(() => new Webhook(other).verify(body, { ...headers })).toThrow();
  });
});

describe('EndpointGate', () => {
  it('admits up to its concurrency', () => {
    const g = new EndpointGate({ concurrency: 2, failures: 3, cooldownMs: 1000 });
    expect([g.tryAcquire(), g.tryAcquire(), g.tryAcquire()]).toEqual([true, true, false]);
    g.done(true, 10);
    expect(g.tryAcquire()).toBe(true);
  });

  it('opens after N consecutive failures, probes once after the cool-down, closes on success', () => {
    let now = 0;
    const g = new EndpointGate({ concurrency: 10, failures: 3, cooldownMs: 1000 }, () => now);
    for (let i = 0; i < 2; i++) {
      expect(g.tryAcquire()).toBe(true);
      g.done(false, 5);
    }
    // A success in between resets the count.
    g.tryAcquire();
    g.done(true, 5);
    for (let i = 0; i < 3; i++) {
      expect(g.tryAcquire()).toBe(true);
      g.done(false, 5);
    }
    expect(g.state).toBe('open');
    expect(g.tryAcquire()).toBe(false);
    expect(g.waitMs()).toBeGreaterThanOrEqual(1000);
    now = 1000;
    expect(g.state).toBe('half-open');
    expect(g.tryAcquire()).toBe(true); // the probe
    expect(g.tryAcquire()).toBe(false); // only one
    g.done(false, 5);
    expect(g.state).toBe('open'); // a failed probe opens it again
    now = 2000;
    expect(g.tryAcquire()).toBe(true);
    g.done(true, 5);
    expect(g.state).toBe('closed');
    expect([g.tryAcquire(), g.tryAcquire()]).toEqual([true, true]);
  });
});

describe('EventRouter', () => {
  const ep = (id: string, events: string[], keyId?: string): WebhookEndpoint => ({
    id,
    url: `https://h.example/${id}`,
    events: events as WebhookEndpoint['events'],
    secret: SECRET,
    ...(keyId ? { keyId } : {}),
  });
  const ev = (id: string, type: string, notification?: string): WebhookEvent => ({
    id,
    type: type as WebhookEvent['type'],
    ts: 0,
    data: notification ? { notification, device: 'd' } : { device: 'd' },
  });

  it("sends notification events to the publishing key's endpoints, device events to all that want them, raw facts nowhere", async () => {
    const lookups: string[][] = [];
    const router = new EventRouter(async (ids) => {
      lookups.push([...ids]);
      return ids.map((id) => ({ n1: 'k1', n2: 'k2' })[id]);
    });
    const a = ep('a', ['notification.delivered', 'device.online'], 'k1');
    const b = ep('b', ['notification.delivered', 'device.offline'], 'k2');
    const all = ep('all', ['notification.delivered']);
    const routed = await router.route(
      [a, b, all],
      [
        ev('e1', 'notification.delivered', 'n1'),
        ev('e2', 'notification.delivered', 'n2'),
        ev('e3', 'notification.delivered', 'n3'), // key unknown: only keyless endpoints
        ev('e4', 'device.online'),
        ev('e5', 'device.offline'),
        ev('e6', 'device.connect'),
      ],
    );
    const ids = (e: WebhookEndpoint) => routed.get(e)?.map((x) => x.id);
    expect(ids(a)).toEqual(['e1', 'e4']);
    expect(ids(b)).toEqual(['e2', 'e5']);
    expect(ids(all)).toEqual(['e1', 'e2', 'e3']);
    // Known keys are cached: a second round looks up only the unknown one again.
    await router.route([a], [ev('e7', 'notification.acked', 'n1'), ev('e8', 'notification.acked', 'n3')]);
    expect(lookups).toEqual([['n1', 'n2', 'n3'], ['n3']]);
  });

  it('splits events into requests of the batch size', () => {
    expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });
});
