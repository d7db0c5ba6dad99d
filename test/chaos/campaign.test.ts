import { afterAll, expect, it } from 'vitest';
import { type CheckResult, check, resultTable } from '../support/chaos/checker.js';
import { type ChaosCluster, startChaosCluster } from '../support/chaos/cluster.js';
import { FAULT_KINDS, type FaultRecord, runSchedule } from '../support/chaos/faults.js';
import {
  ChaosDevice,
  Publisher,
  type PublishTarget,
  sleep,
  type TransportKind,
} from '../support/chaos/load.js';
import { Rng, seedFromEnv } from '../support/chaos/rng.js';
import { loopback } from '../support/system.js';

/**
 * The fault campaign (issue #19, docs/guarantees.md "Fault campaign"): publishers and SDK devices
 * run while a seeded schedule injects every fault kind; the checker then reads the histories.
 * HERALD_CHAOS_SEED replays a run; HERALD_CHAOS_MINUTES=20 makes it a long one.
 */
const SEED = seedFromEnv();
const MINUTES = Number(process.env.HERALD_CHAOS_MINUTES ?? '0');
if (!Number.isFinite(MINUTES) || MINUTES < 0 || MINUTES > 24 * 60) {
  throw new Error(`HERALD_CHAOS_MINUTES must be 0..1440, got ${process.env.HERALD_CHAOS_MINUTES}`);
}
const LONG = MINUTES > 0;
const NODES = 3;
const DEVICES = 12;
const PUBLISHERS = 3;
const TRANSPORTS: readonly TransportKind[] = ['websocket', 'sse', 'poll'];
const TOPICS = ['chaos.a', 'chaos.b'];
/** After the faults: how long every accepted notification has to reach its devices. */
const DRAIN_MS = 60_000;
const TTL_S = 3600;

let cluster: ChaosCluster | undefined;
const devices: ChaosDevice[] = [];
afterAll(async () => {
  await Promise.all(devices.map((d) => d.client.close().catch(() => {})));
  await cluster?.stop();
}, 60_000);

it(
  `fault campaign (seed ${SEED}${LONG ? `, ${MINUTES} min` : ''}): nothing accepted is lost, duplicated to the app or reordered`,
  async () => {
    console.log(`[chaos] seed ${SEED} (replay: HERALD_CHAOS_SEED=${SEED})`);
    const rng = new Rng(SEED);
    const c = await startChaosCluster({ nodes: NODES, env: { HERALD_HEARTBEAT_MS: '2000' } });
    cluster = c;

    // Devices: transports in turn, two per user, topics alternating; WebSocket ones from distinct
    // loopback addresses so nginx's address hash spreads them over the nodes.
    for (let i = 0; i < DEVICES; i++) {
      devices.push(
        new ChaosDevice(
          `chaos-d${i}`,
          `chaos-u${Math.floor(i / 2)}`,
          TRANSPORTS[i % TRANSPORTS.length]!,
          TOPICS[i % TOPICS.length]!,
          c.wsUrl,
          loopback(i),
        ),
      );
    }
    await Promise.all(devices.map((d) => d.client.connect()));
    // Subscribed before the first publish, so every topic publish has its devices.
    await waitUntil(() => devices.every((d) => d.subscribed), 'every device subscribed to its topic', 20_000);

    const users = new Map<string, string[]>();
    for (const d of devices) users.set(d.user, [...(users.get(d.user) ?? []), d.device]);
    const pick = (r: Rng): PublishTarget => {
      const x = r.next();
      if (x < 0.45) {
        const d = r.pick(devices).device;
        return { to: { devices: [d] }, stream: 'inbox', targets: [d], direct: true };
      }
      if (x < 0.55) {
        const [a, b] = r
          .shuffle(devices)
          .slice(0, 2)
          .map((d) => d.device);
        return { to: { devices: [a, b] }, stream: 'inbox', targets: [a!, b!], direct: true };
      }
      if (x < 0.82) {
        const u = r.pick([...users.keys()]);
        return { to: { users: [u] }, stream: 'inbox', targets: users.get(u)!, direct: false };
      }
      const topic = r.pick(TOPICS);
      return {
        to: { topic },
        stream: `topic:${topic}`,
        targets: devices.filter((d) => d.topic === topic).map((d) => d.device),
        direct: true,
      };
    };
    const publishers = Array.from(
      { length: PUBLISHERS },
      (_, i) =>
        new Publisher(i, c.apiUrl, rng.fork(100 + i), pick, {
          minGapMs: 150,
          maxGapMs: 650,
          giveUpMs: 30_000,
          ttlS: TTL_S,
          maxPublishes: LONG ? 1_000_000 : 2000,
        }),
    );
    const running = publishers.map((p) => p.run());

    const faults: FaultRecord[] = [];
    const start = performance.now();
    const { counts, overlapped } = await runSchedule(c, devices, rng.fork(1), {
      // Short run: every kind once, then random ones until 90 s (about 2 minutes with start and drain).
      untilMs: start + (LONG ? MINUTES * 60_000 : 90_000),
      maxFaults: LONG ? 100_000 : 40,
      log: (f) => {
        faults.push(f);
        console.log(`[chaos] +${((f.at - start) / 1000).toFixed(1)} s ${f.kind}: ${f.detail}`);
      },
    });
    c.healAll();
    await sleep(2000);
    for (const p of publishers) p.stop();
    await Promise.all(running);
    const faultSeconds = (performance.now() - start) / 1000;

    const accepted = publishers.flatMap((p) => p.accepted);
    const unconfirmed = publishers.flatMap((p) => p.unconfirmed);
    // Every accepted notification reaches all its devices, or the bound passes (then: lost).
    await waitUntil(
      () => accepted.every((a) => a.targets.every((t) => devices.find((d) => d.device === t)!.has(a.id))),
      'every accepted notification delivered',
      DRAIN_MS,
    ).catch(() => {});

    const result = check(
      accepted,
      unconfirmed,
      devices.map((d) => d.history()),
    );
    const table = resultTable(SEED, result, counts, {
      'run (s)': Math.round(faultSeconds),
      'devices (websocket/sse/poll)': `${DEVICES} (${TRANSPORTS.map((t) => devices.filter((d) => d.transport === t).length).join('/')})`,
      publishers: PUBLISHERS,
      'fault pairs run at once': overlapped,
      'publish retries': publishers.reduce((s, p) => s + p.retries, 0),
    });
    console.log(`[chaos] result\n${table}`);
    report(result, publishers, devices);

    expect(
      publishers.flatMap((p) => p.refused),
      'answers other than 202/503/409-in-progress',
    ).toEqual([]);
    expect(counts.size, 'every fault kind injected').toBe(FAULT_KINDS.length);
    expect(result.accepted, 'a few hundred notifications').toBeGreaterThanOrEqual(LONG ? 1000 : 150);
    expect(result.lost, `lost (seed ${SEED})`).toEqual([]);
    expect(result.duplicated, `duplicated to the app (seed ${SEED})`).toEqual([]);
    expect(result.duplicatedByKey, `one key, two ids (seed ${SEED})`).toEqual([]);
    expect(result.reorderedSeq, `reordered (seed ${SEED})`).toEqual([]);
    expect(result.reorderedDirect, `reordered vs 202 order (seed ${SEED})`).toEqual([]);
    expect(result.unexpected, `unexpected (seed ${SEED})`).toEqual([]);
    expect(result.gaps, `gaps (seed ${SEED}): none expected with a ${TTL_S} s TTL`).toEqual([]);
  },
  (LONG ? MINUTES * 60 + 300 : 300) * 1000,
);

/** Details of whatever failed, so a red run says what to look at (with the seed). */
function report(r: CheckResult, publishers: Publisher[], devs: ChaosDevice[]): void {
  const lines: string[] = [];
  const few = <T>(xs: T[]) => JSON.stringify(xs.slice(0, 10));
  if (r.lost.length) lines.push(`lost: ${few(r.lost)}`);
  if (r.duplicated.length) lines.push(`duplicated: ${few(r.duplicated)}`);
  if (r.duplicatedByKey.length) lines.push(`one key, two ids: ${few(r.duplicatedByKey)}`);
  if (r.reorderedDirect.length) lines.push(`reordered vs 202: ${few(r.reorderedDirect)}`);
  if (r.unexpected.length) lines.push(`unexpected: ${few(r.unexpected)}`);
  if (r.gaps.length) lines.push(`gaps: ${few(r.gaps)}`);
  const refused = publishers.flatMap((p) => p.refused);
  if (refused.length) lines.push(`refused: ${few(refused)}`);
  for (const d of devs) {
    if (d.errors.some((e) => e.includes('fatal'))) lines.push(`${d.device} errors: ${few(d.errors)}`);
  }
  if (r.maxWaitPair) lines.push(`longest wait: ${JSON.stringify(r.maxWaitPair)}`);
  if (lines.length) console.log(`[chaos] details (seed ${SEED})\n${lines.join('\n')}`);
}

async function waitUntil(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
