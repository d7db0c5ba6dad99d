import { decodeCursors } from '@herald/protocol';
import { http, SseReader } from '@herald/stack';
import { afterEach, describe, expect, it } from 'vitest';
import { AppDevice, pool } from '../support/devices.js';
import { API_KEY, loopback, type SystemStack, startSystem } from '../support/system.js';

let sys: SystemStack | undefined;
afterEach(async () => {
  await sys?.teardown();
  sys = undefined;
}, 60_000);

interface Note {
  stream: string;
  seq: number;
  id: string;
}

/** The push nodes' HTTP base through the balancer (the same listener as WebSocket). */
const httpBase = (s: SystemStack) => s.wsUrl.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');

const api = (s: SystemStack, method: string, path: string) =>
  fetch(`${s.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${API_KEY}` } });

function cursorsOf(enc: string | undefined): Record<string, number> {
  const d = decodeCursors(enc ?? '');
  if (!d.ok) throw new Error(`bad cursors ${enc}: ${d.reason}`);
  return d.cursors;
}

/** Exactly once, and in seq order per stream. */
function checkOrder(notes: Note[]): void {
  expect(new Set(notes.map((n) => n.id)).size).toBe(notes.length);
  const last = new Map<string, number>();
  for (const n of notes) {
    expect(n.seq, `${n.stream} in order`).toBeGreaterThan(last.get(n.stream) ?? 0);
    last.set(n.stream, n.seq);
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A long-poll device: polls from its cursors, acks each answer over HTTP, until stopped. */
class Poller {
  readonly seen: Note[] = [];
  cursors: string | undefined;
  polls = 0;
  errors = 0;
  private running = true;
  readonly done: Promise<void>;

  constructor(
    private readonly base: string,
    private readonly token: string,
    private readonly localAddress: string,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    const auth = { authorization: `Bearer ${this.token}` };
    while (this.running) {
      const q = this.cursors ? `?wait=2&cursors=${this.cursors}` : '?wait=2';
      let r: { status: number; json: unknown };
      try {
        r = await http('GET', `${this.base}/v1/poll${q}`, { headers: auth, localAddress: this.localAddress });
      } catch {
        // Its node died under the held poll: the next one, with the same cursors, lands elsewhere.
        this.errors++;
        await new Promise((res) => setTimeout(res, 100));
        continue;
      }
      this.polls++;
      expect(r.status).toBe(200);
      const body = r.json as { cursors: string; frames: (Note & { type: string })[] };
      for (const f of body.frames) if (f.type === 'notification') this.seen.push(f);
      this.cursors = body.cursors;
      if (body.frames.length > 0) {
        // Cumulative: an ack lost with its node is covered by the next one.
        const a = await http('POST', `${this.base}/v1/acks`, {
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ cursors: body.cursors }),
          localAddress: this.localAddress,
        }).catch(() => undefined);
        if (a) expect(a.status).toBe(204);
        else this.errors++;
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

const notesOf = (r: SseReader): Note[] => r.of('notification').map((e) => JSON.parse(e.data) as Note);

describe('SSE, long-poll and WebSocket side by side through nginx', () => {
  it('deliver mixed publishes exactly once in order, and status counts move for all three', async () => {
    sys = await startSystem({ nodes: 2 });
    const s = sys;
    const base = httpBase(s);
    const devs = ['mx-ws', 'mx-sse', 'mx-poll'];
    for (const d of devs) expect((await api(s, 'PUT', `/v1/topics/mix/devices/${d}`)).status).toBe(204);

    const ws = new AppDevice('mx-ws', s.wsUrl, () => s.token('mx-ws'), loopback(0));
    await ws.client.connect();
    const sseToken = await s.token('mx-sse');
    const sse = await SseReader.open(`${base}/v1/sse?token=${sseToken}`, {}, loopback(1));
    const welcome = JSON.parse((await sse.event('welcome', 1, 10_000)).data) as { streams: object };
    expect(Object.keys(welcome.streams).sort()).toEqual(['broadcast', 'inbox', 'topic:mix']);
    const poller = new Poller(base, await s.token('mx-poll'), loopback(2));

    const N = 300;
    const ids = await pool(
      Array.from({ length: N }, (_, i) => i),
      8,
      async (i) => {
        const to = i % 4 === 0 ? { topic: 'mix' } : { devices: [devs[(i % 4) - 1]!] };
        const r = await s.publish({ to, data: { i } });
        expect(r.status).toBe(202);
        return { i, id: r.body.id as string };
      },
    );
    const topicIds = ids.filter((x) => x.i % 4 === 0).map((x) => x.id);
    const want = (k: number) =>
      new Set([...topicIds, ...ids.filter((x) => x.i % 4 === k + 1).map((x) => x.id)]);

    const seen: Record<string, () => Note[]> = {
      'mx-ws': () => ws.seen as Note[],
      'mx-sse': () => notesOf(sse),
      'mx-poll': () => poller.seen,
    };
    for (const [k, d] of devs.entries()) {
      const w = want(k);
      await until(() => seen[d]!().length >= w.size, `${d}: ${w.size} notifications`);
      await new Promise((r) => setTimeout(r, 200));
      const got = seen[d]!();
      expect(new Set(got.map((n) => n.id)), d).toEqual(w);
      checkOrder(got);
    }
    // The SSE device acks over HTTP with the cursors of its last event.
    const last = sse.of('notification').at(-1)!;
    const ack = await http('POST', `${base}/v1/acks`, {
      headers: { authorization: `Bearer ${sseToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cursors: cursorsOf(last.id) }),
    });
    expect(ack.status).toBe(204);
    await poller.stop();

    // Topic entries were delivered and acked 3 times (one per transport), inbox entries once.
    await pool(ids, 16, async ({ i, id }) => {
      const n = i % 4 === 0 ? 3 : 1;
      const deadline = Date.now() + 15_000;
      for (;;) {
        const st = (await (await api(s, 'GET', `/v1/notifications/${id}`)).json()) as {
          counts: { delivered: number; acked: number };
        };
        if (st.counts.delivered === n && st.counts.acked === n) return;
        if (Date.now() > deadline)
          throw new Error(`${id} (${i}): counts ${JSON.stringify(st.counts)}, want ${n} delivered and acked`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    sse.close();
    await ws.client.close();
  }, 60_000);
});

describe('kill -9 of the node holding an SSE device and a long-poll device', () => {
  it('resumes both elsewhere with exactly the missing entries', async () => {
    sys = await startSystem({ nodes: 2 });
    const s = sys;
    const base = httpBase(s);
    const addr = loopback(7);
    const token = await s.token('k9-sse');
    const r1 = await SseReader.open(`${base}/v1/sse`, { authorization: `Bearer ${token}` }, addr);
    const victimId = (JSON.parse((await r1.event('welcome', 1, 10_000)).data) as { node: string }).node;
    // Same source address: the balancer puts the poller on the same node.
    const poller = new Poller(base, await s.token('k9-poll'), addr);

    const N = 120;
    let published = 0;
    const publisher = (async () => {
      for (; published < N; published++) {
        const r = await s.publish({ to: { devices: ['k9-sse', 'k9-poll'] }, data: { i: published } });
        expect(r.status).toBe(202);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    await until(() => r1.of('notification').length >= 30, 'first 30 on SSE');
    await s.nodes.find((n) => n.name === victimId)!.kill9();
    await r1.until(() => r1.ended, 10_000, 'the stream to break');
    await publisher;
    const before = notesOf(r1);
    const lastId = r1.of('notification').at(-1)!.id!;
    expect(before.length).toBeGreaterThanOrEqual(30);

    // The browser's reconnect: the same URL with Last-Event-ID.
    const r2 = await SseReader.open(
      `${base}/v1/sse`,
      { authorization: `Bearer ${token}`, 'last-event-id': lastId },
      addr,
    );
    expect(r2.res.headers.connection).toBe('close');
    const w2 = JSON.parse((await r2.event('welcome', 1, 10_000)).data) as { node: string };
    expect(w2.node).not.toBe(victimId);
    await r2.until(() => before.length + r2.of('notification').length >= N, 15_000, 'the rest');
    await new Promise((res) => setTimeout(res, 200));
    const all = [...before, ...notesOf(r2)];
    expect(all.map((n) => n.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    checkOrder(all);

    await until(() => poller.seen.length >= N, 'the poller to catch up');
    await poller.stop();
    console.log(`long-poll: ${poller.polls} polls, ${poller.errors} lost with the node`);
    expect(poller.seen.map((n) => n.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    r2.close();
  }, 60_000);
});

describe('bad input through nginx (PROXY protocol to the node)', () => {
  it('answers 401, 400 and 403 with codes before any stream starts; a good stream delivers', async () => {
    sys = await startSystem({ nodes: 1, proxyProtocol: true });
    const s = sys;
    const base = httpBase(s);
    const no = await http('GET', `${base}/v1/sse`);
    expect(no).toMatchObject({ status: 401, json: { code: 'HERALD_UNAUTHORIZED' } });
    const bad = await http('GET', `${base}/v1/poll?token=x.y.z`);
    expect(bad).toMatchObject({ status: 401, json: { code: 'HERALD_UNAUTHORIZED' } });
    const t = await s.token('bad-in', 'u', ['news.*']);
    const huge = await http('GET', `${base}/v1/sse?token=${t}&cursors=1.${'A'.repeat(9000)}`);
    expect(huge).toMatchObject({ status: 400, json: { code: 'HERALD_BAD_REQUEST' } });
    const mal = await http('GET', `${base}/v1/poll?token=${t}&cursors=1.%7B`);
    expect(mal).toMatchObject({ status: 400, json: { code: 'HERALD_BAD_REQUEST' } });
    const forb = await http('GET', `${base}/v1/sse?token=${t}&topics=sport`);
    expect(forb).toMatchObject({ status: 403, json: { code: 'HERALD_TOPIC_FORBIDDEN' } });
    // The same connection path with a good token: a stream on the node's own socket.
    const r = await SseReader.open(`${base}/v1/sse?token=${t}&topics=news.a`);
    expect(r.res.headers.connection).toBe('close');
    await r.event('welcome', 1, 10_000);
    const p = await s.publish({ to: { topic: 'news.a' }, data: 'x' });
    expect(JSON.parse((await r.event('notification', 1, 10_000)).data)).toMatchObject({ id: p.body.id });
    r.close();
  });
});
