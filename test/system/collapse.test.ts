import { createHash } from 'node:crypto';
import { http, type Probe, waitFor } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushService, vapidKeys } from '../support/push-service.js';
import { API_KEY, type SystemStack, startSystem } from '../support/system.js';

// collapseKey and priority end to end (issue #17, docs/api.md, docs/protocol.md): API, worker,
// node, nginx and Redis as processes; raw WebSocket frames and long-poll answers; a local push
// service for the Web Push Urgency and Topic headers.
let sys: SystemStack;
let push: PushService;

const httpBase = () => sys.wsUrl.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');

/**
 * One after another: each appended before the next publish, so append order is publish order
 * (a queued one, to users, waits for its state `sent`; `queued: false` leaves it queued).
 */
async function publishAll(bodies: unknown[], o: { waitSent?: boolean } = {}): Promise<string[]> {
  const ids: string[] = [];
  for (const b of bodies) {
    const r = await sys.publish(b);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const id = r.body.id as string;
    ids.push(id);
    if (r.body.status === 'queued' && o.waitSent !== false)
      await waitFor(async () => (await status(id)).state === 'sent', {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: `${id} sent`,
      });
  }
  return ids;
}

async function status(id: string): Promise<{ state: string; counts: { delivered: number } }> {
  const s = await fetch(`${sys.apiUrl}/v1/notifications/${id}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  return (await s.json()) as { state: string; counts: { delivered: number } };
}

beforeAll(async () => {
  push = await PushService.start();
  const vapid = vapidKeys();
  sys = await startSystem({
    nodes: 1,
    env: {
      HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
      HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
      HERALD_VAPID_SUBJECT: 'mailto:ops@herald.test',
      HERALD_WEBPUSH_ALLOW_LOCAL_HTTP: 'true',
    },
  });
}, 60_000);
afterAll(async () => {
  await sys?.teardown();
  await push?.stop();
}, 30_000);

describe('collapseKey', () => {
  it('a device offline during 5 publishes with one key gets the last, told 4 were collapsed (WebSocket)', async () => {
    const ids = await publishAll(
      [1, 2, 3, 4, 5].map((i) => ({
        to: { devices: ['ck-off'] },
        data: { score: i },
        collapseKey: 'match-42',
      })),
    );
    const p = await sys.connect('ck-off');
    try {
      const n = await p.frame('notification');
      const gap = p.frames.find((f) => f.type === 'gap');
      expect(gap).toEqual({ type: 'gap', stream: 'inbox', after: 0, next: 5, reason: 'collapsed' });
      expect(n).toMatchObject({ stream: 'inbox', seq: 5, id: ids[4], data: { score: 5 } });
      expect(p.frames.map((f) => f.type)).toEqual(['welcome', 'gap', 'notification']);
      // The cursor moves past the collapsed entries: acking the last is acking them all.
      p.send({ type: 'ack', stream: 'inbox', seq: 5 });
    } finally {
      p.close();
    }
    // The superseded notifications were never delivered to it: counts stay (delivered 0).
    expect((await status(ids[0] as string)).counts.delivered).toBe(0);
  });

  it('different keys and keyless publishes do not interfere; the queue path collapses too', async () => {
    const p0 = await sys.connect('ck-mix', { user: 'ck-mix-user' });
    p0.close();
    // Through the worker (users) and direct (devices), interleaved keys a, b and none.
    await publishAll([
      { to: { users: ['ck-mix-user'] }, data: 'a1', collapseKey: 'a' },
      { to: { devices: ['ck-mix'] }, data: 'b1', collapseKey: 'b' },
      { to: { devices: ['ck-mix'] }, data: 'x' },
      { to: { devices: ['ck-mix'] }, data: 'b2', collapseKey: 'b' },
      { to: { users: ['ck-mix-user'] }, data: 'a2', collapseKey: 'a' },
    ]);
    const p = await sys.connect('ck-mix', { user: 'ck-mix-user', cursors: { inbox: 0 } });
    try {
      await p.until(() => p.notifications().length >= 3, 'three notifications', 10_000);
      const shown = p.frames.filter((f) => f.type === 'gap' || f.type === 'notification');
      expect(shown.map((f) => (f.type === 'gap' ? `gap ${f.after}..${f.next} ${f.reason}` : f.data))).toEqual(
        ['gap 0..3 collapsed', 'x', 'b2', 'a2'],
      );
    } finally {
      p.close();
    }
  });

  it('a device online during the publishes gets all 5, live', async () => {
    const p = await sys.connect('ck-on');
    try {
      await publishAll(
        [1, 2, 3, 4, 5].map((i) => ({ to: { devices: ['ck-on'] }, data: i, collapseKey: 'k' })),
      );
      await p.until(() => p.notifications().length === 5, '5 notifications', 5000);
      expect(p.notifications().map((f) => [f.seq, f.data])).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 5],
      ]);
      expect(p.frames.some((f) => f.type === 'gap')).toBe(false);
    } finally {
      p.close();
    }
  });

  it('long-poll carries the collapsed gap the same way, on a topic stream', async () => {
    const token = await sys.token('ck-poll', 'ck-poll-user', ['ck.scores']);
    const auth = { authorization: `Bearer ${token}` };
    // Subscribe (from the topic's head), then publish while no poll is held.
    const sub = await fetch(`${sys.apiUrl}/v1/topics/ck.scores/devices/ck-poll`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(sub.status).toBe(204);
    await publishAll([1, 2, 3].map((i) => ({ to: { topic: 'ck.scores' }, data: i, collapseKey: 'live' })));
    const r = await http('GET', `${httpBase()}/v1/poll?wait=0`, { headers: auth });
    expect(r.status).toBe(200);
    const frames = (r.json as { frames: { type: string }[] }).frames;
    expect(frames.map((f) => ({ ...f, id: undefined, ts: undefined }))).toMatchObject([
      { type: 'gap', stream: 'topic:ck.scores', after: 0, next: 3, reason: 'collapsed' },
      { type: 'notification', stream: 'topic:ck.scores', seq: 3, data: 3 },
    ]);
  });
});

describe('priority', () => {
  it('the frame carries priority when it is not normal', async () => {
    const p = await sys.connect('pr-frame');
    try {
      await publishAll(
        (['high', 'normal', 'low', undefined] as const).map((priority) => ({
          to: { devices: ['pr-frame'] },
          data: priority ?? 'default',
          ...(priority ? { priority } : {}),
        })),
      );
      await p.until(() => p.notifications().length === 4, '4 notifications', 5000);
      expect(p.notifications().map((f) => [f.data, f.priority])).toEqual([
        ['high', 'high'],
        ['normal', undefined],
        ['low', 'low'],
        ['default', undefined],
      ]);
    } finally {
      p.close();
    }
    // Replayed from the stream, it still carries it.
    const again = await sys.connect('pr-frame', { cursors: { inbox: 0 } });
    try {
      await again.until(() => again.notifications().length === 4, 'the replay', 5000);
      expect(again.notifications().map((f) => f.priority)).toEqual(['high', undefined, 'low', undefined]);
    } finally {
      again.close();
    }
  });

  it('the worker takes queued jobs high before normal before low', async () => {
    const p: Probe = await sys.connect('pr-order', { user: 'pr-order-user' });
    try {
      // Worker stopped: the jobs wait in the queue, queued in the order low, normal, high.
      await sys.worker.stop();
      await publishAll(
        (['low', 'normal', 'high', 'low', 'high'] as const).map((priority, i) => ({
          to: { users: ['pr-order-user'] },
          data: `${priority}-${i}`,
          priority,
        })),
        { waitSent: false },
      );
      await sys.worker.restart();
      await p.until(() => p.notifications().length === 5, '5 notifications', 15_000);
      // Jobs for one target run in the order the worker took them: the seqs show that order.
      expect(p.notifications().map((f) => [f.seq, f.data])).toEqual([
        [1, 'high-2'],
        [2, 'high-4'],
        [3, 'normal-1'],
        [4, 'low-0'],
        [5, 'low-3'],
      ]);
    } finally {
      p.close();
    }
  });
});

describe('Web Push mapping', () => {
  it('priority becomes Urgency and collapseKey the Topic (hashed when not a valid Topic)', async () => {
    const sub = push.subscribe();
    const reg = await fetch(`${sys.apiUrl}/v1/devices/pr-wp/webpush`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await sys.token('pr-wp')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...sub, id: undefined }),
    });
    expect(reg.status).toBe(200);
    const long = 'match.42:score';
    await publishAll([
      { to: { devices: ['pr-wp'] }, data: 1, priority: 'low', collapseKey: 'order-42', push: { after: 0 } },
      { to: { devices: ['pr-wp'] }, data: 2, priority: 'high', collapseKey: long, push: { after: 0 } },
      // Given explicitly, push.urgency and push.topic win.
      {
        to: { devices: ['pr-wp'] },
        data: 3,
        priority: 'high',
        collapseKey: 'c',
        push: { after: 0, urgency: 'very-low', topic: 'own' },
      },
      { to: { devices: ['pr-wp'] }, data: 4, push: { after: 0 } },
    ]);
    await waitFor(() => push.pushes(sub.id).length >= 4, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: '4 pushes',
    });
    const got = push.pushes(sub.id);
    const byData = new Map(got.map((g) => [(JSON.parse(g.text) as { data: number }).data, g]));
    const hashed = createHash('sha256').update(long).digest('base64url').slice(0, 32);
    expect([1, 2, 3, 4].map((d) => [byData.get(d)?.urgency, byData.get(d)?.topic])).toEqual([
      ['low', 'order-42'],
      ['high', hashed],
      ['very-low', 'own'],
      // Neither priority nor push.urgency: the sender's default, no Topic.
      ['normal', undefined],
    ]);
  });
});

describe('bad input', () => {
  it('answers 400 naming the field, for single and batch publishes', async () => {
    const base = { to: { devices: ['bad-1'] }, data: 1 };
    const cases: [unknown, RegExp][] = [
      [{ ...base, priority: 'urgent' }, /^priority must be one of high, normal, low$/],
      [{ ...base, priority: 1 }, /^priority must be string$/],
      [{ ...base, collapseKey: 'x'.repeat(65) }, /^collapseKey must be 1 to 64 of /],
      [{ ...base, collapseKey: '' }, /^collapseKey must be 1 to 64 of /],
      [{ ...base, collapseKey: 'has space' }, /^collapseKey must be 1 to 64 of /],
      [{ ...base, collapseKey: 7 }, /^collapseKey must be string$/],
    ];
    for (const [body, re] of cases) {
      const r = await sys.publish(body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(r.body.code).toBe('HERALD_BAD_REQUEST');
      expect(r.body.message as string).toMatch(re);
    }
    const batch = await fetch(`${sys.apiUrl}/v1/notifications/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ notifications: [base, { ...base, priority: 'urgent' }] }),
    });
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as { message: string }).message).toMatch(/notifications\[1\]\.priority/);
    // Valid ones are accepted, and a max-length key is fine.
    const ok = await sys.publish({ ...base, priority: 'low', collapseKey: 'k'.repeat(64) });
    expect(ok.status).toBe(202);
  });
});
