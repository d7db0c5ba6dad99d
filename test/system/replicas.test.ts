import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type RedisSentinelHandle, redisCli, startRedis, startRedisSentinel, waitFor } from '@herald/stack';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY, type SystemStack, startSystem } from '../support/system.js';

/**
 * HERALD_REDIS_MIN_REPLICAS on Redis Sentinel (1 master, 1 replica, 3 sentinels): a burst of
 * publishes, then kill -9 of the master as soon as the last 202 is in (no wait for the replica
 * to catch up). After the sentinels promote the replica, every 202 must still be there: its
 * status (GET /v1/notifications/:id) and its stream entries (read on the new master). With 0,
 * the same burst measures what asynchronous replication lost (docs/guarantees.md quotes it).
 *
 * Two ways the replica is behind when the master dies:
 * - 'in sync': the replica is healthy; only the replication in flight at the kill can be lost.
 * - 'lagging': the replica is cut off during the burst (stopped with SIGSTOP and its link
 *   closed by the master, so nothing waits in its socket buffer either: a partitioned or slow
 *   link) and resumed right after the kill: everything accepted meanwhile exists only on the
 *   master. With 1, those publishes must be answered 503, never 202.
 */
const BURST_DIRECT = 150;
const BURST_QUEUED = 50;
const DEVICES = ['rp-a', 'rp-b', 'rp-c'];
/** Two devices > HERALD_DIRECT_MAX_DEVICES (1): these go through the queue and the worker. */
const QUEUED_TO = ['rp-q1', 'rp-q2'];
const inboxKey = (device: string) => `herald:{d:${device}}:inbox`;

interface Sent {
  id: string;
  queued: boolean;
}

interface Outcome {
  answered: Record<number, number>;
  accepted: Sent[];
  /** 202s whose status is gone after the failover. */
  noStatus: string[];
  /** 202s whose stream entries are (partly) gone, or a queued one never sent. */
  noEntries: string[];
}

let redis: RedisSentinelHandle | undefined;
let sys: SystemStack | undefined;
afterEach(async () => {
  await sys?.teardown();
  await redis?.stop();
  sys = undefined;
  redis = undefined;
}, 60_000);

async function post(body: unknown): Promise<{ status: number; id?: string }> {
  const res = await fetch(`${sys!.apiUrl}/v1/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const json = (await res.json()) as { id?: string };
  return { status: res.status, id: json.id };
}

async function statusOf(id: string): Promise<number | { state: string }> {
  const res = await fetch(`${sys!.apiUrl}/v1/notifications/${id}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
    signal: AbortSignal.timeout(5000),
  });
  return res.status === 200 ? ((await res.json()) as { state: string }) : res.status;
}

/** HERALD_REDIS_MIN_REPLICAS of the running setup. */
let minReplicas = 0;

async function start(min: number): Promise<void> {
  minReplicas = min;
  redis = await startRedisSentinel();
  sys = await startSystem({
    nodes: 1,
    redisUrl: redis.url,
    env: {
      HERALD_REDIS_MIN_REPLICAS: String(min),
      HERALD_REDIS_REPLICA_TIMEOUT_MS: '250',
      HERALD_DIRECT_MAX_DEVICES: '1',
    },
  });
}

/** One burst, kill -9 and failover on the running setup; the dead master comes back as a replica. */
async function run(lagging: boolean): Promise<Outcome> {
  const s = redis!;
  const oldMaster = await s.currentMaster();
  const [dying, promoted] = s.master.port === oldMaster ? [s.master, s.replica] : [s.replica, s.master];
  // The worker is ready before the burst, so the queued ones are in flight when the master dies.
  expect((await post({ to: { devices: QUEUED_TO }, data: 'warm-up' })).status).toBe(202);

  if (lagging) {
    process.kill(promoted.pid, 'SIGSTOP');
    expect(await redisCli(oldMaster, 'CLIENT', 'KILL', 'TYPE', 'replica')).toBe('1');
  }
  const answered: Record<number, number> = {};
  const accepted: Sent[] = [];
  // 20 publishers at once, each sending its share one after another.
  const bodies = [
    ...Array.from({ length: BURST_DIRECT }, (_, i) => ({ to: { devices: [DEVICES[i % 3]] }, data: i })),
    ...Array.from({ length: BURST_QUEUED }, (_, i) => ({ to: { devices: QUEUED_TO }, data: `q${i}` })),
  ];
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const r = await post(body);
        answered[r.status] = (answered[r.status] ?? 0) + 1;
        if (r.status === 202) accepted.push({ id: r.id!, queued: body.to.devices.length > 1 });
      }
    }),
  );
  // Right away: the replica gets no time to catch up.
  await dying.kill9();
  if (lagging) process.kill(promoted.pid, 'SIGCONT');

  await waitFor(async () => (await s.currentMaster().catch(() => oldMaster)) === promoted.port, {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: 'the sentinels to promote the replica',
  });
  // Back as a replica of the new master: with HERALD_REDIS_MIN_REPLICAS=1 and one replica,
  // nothing is accepted until a replica is back. The test sends the REPLICAOF the sentinels would
  // send (they wait 8 s after seeing a former master come back as a master, then up to an INFO
  // period): the same end state, about 10 s sooner per failover.
  await dying.restart();
  expect(await redisCli(dying.port, 'REPLICAOF', '127.0.0.1', String(promoted.port))).toMatch(/^OK/);
  const master = new Redis(promoted.port, '127.0.0.1', { lazyConnect: true });
  try {
    await master.connect();
    await waitFor(async () => /slave0:.*state=online/.test(await master.info('replication')), {
      timeoutMs: 30_000,
      what: 'the old master to replicate the new one',
    });
    // The API's connection finds the new master (503 meanwhile).
    await waitFor(async () => (await post({ to: { devices: ['rp-probe'] }, data: 'after' })).status === 202, {
      timeoutMs: 30_000,
      what: 'the API to publish on the new master',
    });
    const states = new Map<string, number | { state: string }>();
    for (const { id } of accepted) states.set(id, await statusOf(id));
    const noStatus = accepted.filter(({ id }) => states.get(id) === 404).map((s) => s.id);
    expect([...states.values()].filter((s) => typeof s === 'number' && s !== 404)).toEqual([]);
    // Queued ones that still have a status are fanned out by the worker: wait for it (bounded),
    // a queued one whose job was lost stays `queued` and counts as lost.
    const queued = accepted.filter((s) => s.queued && !noStatus.includes(s.id));
    const sent = async () => {
      const now = await Promise.all(queued.map((s) => statusOf(s.id)));
      return now.filter((s) => typeof s === 'object' && s.state === 'sent').length;
    };
    await waitFor(async () => (await sent()) === queued.length, {
      timeoutMs: minReplicas > 0 ? 30_000 : 10_000,
      what: 'every queued publish with a status to be sent',
    }).catch((err: unknown) => {
      if (minReplicas > 0) throw err;
    });
    const inboxes = new Map<string, Set<string>>();
    for (const d of [...DEVICES, ...QUEUED_TO]) {
      const entries = await master.xrange(inboxKey(d), '-', '+');
      inboxes.set(d, new Set(entries.map(([, f]) => f[f.indexOf('i') + 1]!)));
    }
    const sentIds = new Set<string>();
    for (const s of queued) {
      const st = await statusOf(s.id);
      if (typeof st === 'object' && st.state === 'sent') sentIds.add(s.id);
    }
    const noEntries = accepted
      .filter((s) =>
        s.queued
          ? !sentIds.has(s.id) || !QUEUED_TO.every((d) => inboxes.get(d)!.has(s.id))
          : !DEVICES.some((d) => inboxes.get(d)!.has(s.id)),
      )
      .map((s) => s.id);
    return { answered, accepted, noStatus, noEntries };
  } finally {
    master.disconnect();
  }
}

function report(name: string, o: Outcome): void {
  const lost = new Set([...o.noStatus, ...o.noEntries]).size;
  console.log(
    `[replicas] ${name}: answered ${JSON.stringify(o.answered)}, accepted ${o.accepted.length}, ` +
      `lost ${lost} (status gone ${o.noStatus.length}, entries gone or never sent ${o.noEntries.length})`,
  );
}

describe('HERALD_REDIS_MIN_REPLICAS on Sentinel, kill -9 of the master right after a burst', () => {
  it('1: every 202 survives the failover; while the replica lags nothing is answered 202', async () => {
    await start(1);
    const inSync = await run(false);
    report('min 1, in sync', inSync);
    expect(inSync.accepted.length).toBe(BURST_DIRECT + BURST_QUEUED);
    expect(inSync.noStatus).toEqual([]);
    expect(inSync.noEntries).toEqual([]);

    const o = await run(true);
    report('min 1, lagging', o);
    // The replica confirms nothing while stopped: 503 (retry later), never a 202 that is lost.
    expect(o.answered[503]).toBeGreaterThan(0);
    expect(Object.keys(o.answered).sort()).toEqual(o.accepted.length > 0 ? ['202', '503'] : ['503']);
    expect(o.noStatus).toEqual([]);
    expect(o.noEntries).toEqual([]);
  }, 150_000);

  it('0: measures what asynchronous replication loses (docs/guarantees.md)', async () => {
    // Only the lagging case: in sync, min 0 and min 1 accept the same (the test above checks min
    // 1's), and the failover with its wait for the old master to rejoin costs ~20 s of the suite.
    await start(0);
    const lagging = await run(true);
    report('min 0, lagging', lagging);
    expect(lagging.accepted.length).toBe(BURST_DIRECT + BURST_QUEUED);
    // Accepted while the replica was stopped: all on the dead master only.
    expect(new Set([...lagging.noStatus, ...lagging.noEntries]).size).toBeGreaterThan(0);
  }, 180_000);
});

/**
 * Found by the Sentinel fault campaign (seed 1): a node delivered entries its replica did not
 * hold yet (from the doorbell, rung inside the append's script, and from stream reads), so a
 * publish answered 503 reached devices, a failover then took it back (the inbox's seq stepped
 * back: `reset` gaps) and the publisher's retry delivered it again under a new id. With
 * HERALD_REDIS_MIN_REPLICAS=1 a node now delivers only what the replica holds: here a replica
 * stopped while one publish is made reaches neither the connected device (doorbell) nor one that
 * connects afterwards (stream read: it gets nothing, the replica confirms a read whole) before
 * the replica is resumed; both get it after.
 */
describe('HERALD_REDIS_MIN_REPLICAS=1 on the nodes', () => {
  it('delivers nothing the replica does not hold yet, and delivers it once it does', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-replica-read-'));
    const master = await startRedis({ dir: path.join(dir, 'master') });
    const replica = await startRedis({
      dir: path.join(dir, 'replica'),
      extraArgs: ['--replicaof', '127.0.0.1', String(master.port)],
    });
    let stopped = false;
    try {
      await waitFor(
        async () => (await redisCli(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
        { timeoutMs: 20_000, what: 'replica linked' },
      );
      sys = await startSystem({
        nodes: 1,
        redisUrl: master.url,
        env: { HERALD_REDIS_MIN_REPLICAS: '1', HERALD_REDIS_REPLICA_TIMEOUT_MS: '250' },
      });
      const live = await sys.connect('rr-live');
      const first = await sys.publish({ to: { devices: ['rr-live', 'rr-late'] }, data: 'first' });
      expect(first.status).toBe(202);
      await live.until(
        () => live.notifications().length === 1 || undefined,
        'the first notification',
        10_000,
      );

      process.kill(replica.pid, 'SIGSTOP');
      stopped = true;
      expect(await redisCli(master.port, 'CLIENT', 'KILL', 'TYPE', 'replica')).toBe('1');
      const held = await sys.publish({ to: { devices: ['rr-live', 'rr-late'] }, data: 'held' });
      // Not confirmed by the replica: 503 (the entry is on the master and may or may not survive).
      expect(held.status).toBe(503);
      // A device connecting now reads its inbox from the start (cursor 0): both entries, which
      // the replica confirms together or not at all.
      const late = await sys.connect('rr-late', { cursors: { inbox: 0 } });
      // What the node delivers meanwhile (before the fix: 'held' to both, within milliseconds).
      await new Promise((r) => setTimeout(r, 1500));
      const whileStopped = [live, late].map((p) => p.notifications().map((f) => f.data));

      process.kill(replica.pid, 'SIGCONT');
      stopped = false;
      for (const p of [live, late])
        await p.until(
          () => p.notifications().length === 2 || undefined,
          "'held' once the replica has it",
          20_000,
        );
      expect(whileStopped).toEqual([['first'], []]);
      expect([live, late].map((p) => p.notifications().map((f) => f.data))).toEqual([
        ['first', 'held'],
        ['first', 'held'],
      ]);
    } finally {
      if (stopped) process.kill(replica.pid, 'SIGCONT');
      await sys?.teardown();
      sys = undefined;
      await replica.stop();
      await master.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
