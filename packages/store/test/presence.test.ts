import { REDIS_MODES } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedis,
  Devices,
  Keys,
  PAGE_CURSOR,
  Presence,
  type RedisClient,
  scanPage,
} from '../src/index.js';

/** One Redis, and a Cluster: the topic sets live in their topics' slots, the device keys in theirs. */
let n = 0;
const TTL = 60_000;

describe.each(REDIS_MODES)('Presence on $name', (mode) => {
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

  const fresh = () => {
    const keys = new Keys(`ps${++n}`);
    return { keys, devices: new Devices(redis, keys, 86_400_000), presence: new Presence(redis, keys, TTL) };
  };

  /** Every item of a paged scan, following cursors (bounded). */
  async function all(
    page: (cursor: string) => Promise<{ items: string[]; cursor: string | undefined }>,
    limit: number,
  ) {
    const out: string[] = [];
    let cursor: string | undefined = '0';
    for (let i = 0; i < 10_000 && cursor !== undefined; i++) {
      const p = await page(cursor);
      expect(p.items.length).toBeLessThanOrEqual(limit);
      if (p.cursor !== undefined) expect(p.cursor).toMatch(PAGE_CURSOR);
      out.push(...p.items);
      cursor = p.cursor;
    }
    return out;
  }

  it('records since, transport and last seen per node; a second connection keeps the first since', async () => {
    const { devices, presence } = fresh();
    const t0 = Date.now();
    await devices.connect([{ device: 'd1', user: 'u1', transport: 'sse' }], 'n1', TTL, t0);
    await devices.connect([{ device: 'd1', user: 'u1', transport: 'sse' }], 'n1', TTL, t0 + 50);
    await devices.connect([{ device: 'd1', user: 'u1', transport: 'poll' }], 'n2', TTL, t0 + 100);
    let p = await presence.device('d1', t0 + 200);
    expect(p.online).toBe(true);
    expect(p.nodes).toEqual([
      { id: 'n1', since: t0, transport: 'sse' },
      { id: 'n2', since: t0 + 100, transport: 'poll' },
    ]);
    expect(p.since).toBe(t0);
    await presence.removeMany(['d1'], 'n1', t0 + 300);
    await presence.removeMany([{ device: 'd1' }], 'n2', t0 + 400);
    p = await presence.device('d1', t0 + 500);
    expect(p).toMatchObject({ online: false, nodes: [], since: undefined, seen: t0 + 400 });
    expect((await presence.device('never', t0)).seen).toBeUndefined();
  });

  it('counts and pages a topic of 10,000 online members; expired and removed ones leave', async () => {
    const { presence, keys } = fresh();
    const now = Date.now();
    const members = Array.from({ length: 10_000 }, (_, i) => ({ device: `m${i}`, topics: ['big', 'small'] }));
    await presence.joinTopics(members, now);
    expect(await presence.topicCount('big', now)).toBe(10_000);
    const listed = await all((c) => presence.topicPage('big', c, 1000, now), 1000);
    expect(new Set(listed).size).toBe(10_000);
    // A small set is answered whole by Redis: the page cursor still bounds each page.
    await presence.joinTopics([
      { device: 'a', topics: ['few'] },
      { device: 'b', topics: ['few'] },
      { device: 'c', topics: ['few'] },
    ]);
    const few = await all((c) => presence.topicPage('few', c, 2), 2);
    expect(few.sort()).toEqual(['a', 'b', 'c']);
    // Gone from this node with its topics, and expired ones not counted (and pruned on refresh).
    await presence.removeMany([{ device: 'm0', topics: ['big'] }], 'n1');
    expect(await presence.topicCount('big', now)).toBe(9_999);
    expect(await presence.topicCount('big', now + TTL + 1)).toBe(0);
    await presence.refresh([{ device: 'm1', topics: ['big'] }], 'n1', now + TTL + 1);
    expect(await redis.zcard(keys.topicOnline('big'))).toBe(1);
    expect(await presence.topicCount('big', now + TTL + 2)).toBe(1);
  });

  it('pages a user devices set', async () => {
    const { devices, presence } = fresh();
    await devices.connect(
      Array.from({ length: 250 }, (_, i) => ({ device: `u-d${i}`, user: 'big-user' })),
      'n1',
      TTL,
    );
    const listed = await all((c) => presence.userDevicesPage('big-user', c, 7), 7);
    expect(new Set(listed).size).toBe(250);
  });

  it('scanPage stops after a bounded number of calls on pages of filtered entries', async () => {
    let calls = 0;
    const page = await scanPage(
      async (c) => {
        calls++;
        return [String(Number(c) + 1), [undefined, undefined]];
      },
      '0',
      10,
    );
    expect(page.items).toEqual([]);
    expect(page.cursor).toMatch(PAGE_CURSOR);
    expect(calls).toBeLessThanOrEqual(8);
  });
});
