import { expect } from 'vitest';
import { loopback } from '../system.js';
import { type CheckResult, check, resultTable } from './checker.js';
import { type ChaosCluster, type RedisMode, startChaosCluster } from './cluster.js';
import { type FaultKind, type FaultRecord, kindsFor, runSchedule } from './faults.js';
import { ChaosDevice, Publisher, type PublishTarget, sleep, type TransportKind } from './load.js';
import { Rng } from './rng.js';

/**
 * One fault campaign (issue #19, docs/guarantees.md "Fault campaign"): publishers and SDK devices
 * run while a seeded schedule injects every fault kind of the Redis mode; the checker then reads
 * the histories. Used by test/chaos/campaign*.test.ts.
 */
export interface CampaignOptions {
  seed: number;
  mode: RedisMode;
  /** How long faults are injected (the queue of every kind once is finished even past it). */
  faultMs: number;
  /** The kinds to inject (default: every kind of the mode, kindsFor). */
  kinds?: readonly FaultKind[];
  /** Kinds queued a second time (a mode's own failovers). */
  again?: readonly FaultKind[];
  maxFaults: number;
  maxPublishesEach: number;
  env?: Record<string, string>;
}

export interface CampaignOutcome {
  result: CheckResult;
  counts: Map<FaultKind, number>;
  kinds: FaultKind[];
  refused: string[];
  table: string;
}

const NODES = 3;
const DEVICES = 12;
const PUBLISHERS = 3;
const TRANSPORTS: readonly TransportKind[] = ['websocket', 'sse', 'poll'];
const TOPICS = ['chaos.a', 'chaos.b'];
/** After the faults: how long every accepted notification has to reach its devices. */
const DRAIN_MS = 60_000;
export const TTL_S = 3600;

/** Owns what a campaign started, so the test's afterAll can stop it even after a failure. */
export class Campaign {
  private cluster: ChaosCluster | undefined;
  private readonly devices: ChaosDevice[] = [];

  constructor(private readonly opts: CampaignOptions) {}

  async stop(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.client.close().catch(() => {})));
    await this.cluster?.stop();
  }

  async run(): Promise<CampaignOutcome> {
    const { seed, mode } = this.opts;
    const tag = mode === 'standalone' ? '[chaos]' : `[chaos ${mode}]`;
    console.log(`${tag} seed ${seed} (replay: HERALD_CHAOS_SEED=${seed})`);
    const rng = new Rng(seed);
    const c = await startChaosCluster({
      nodes: NODES,
      mode,
      env: { HERALD_HEARTBEAT_MS: '2000', ...this.opts.env },
    });
    this.cluster = c;
    const devices = this.devices;

    // Devices: transports in turn, two per user, topics alternating; every fourth one through
    // HAProxy, the others through nginx; WebSocket ones from distinct loopback addresses so the
    // balancers' address hash spreads them over the nodes.
    for (let i = 0; i < DEVICES; i++) {
      devices.push(
        new ChaosDevice(
          `chaos-d${i}`,
          `chaos-u${Math.floor(i / 2)}`,
          TRANSPORTS[i % TRANSPORTS.length]!,
          TOPICS[i % TOPICS.length]!,
          i % 4 === 3 ? c.haproxyWsUrl : c.wsUrl,
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
          maxPublishes: this.opts.maxPublishesEach,
        }),
    );
    const running = publishers.map((p) => p.run());

    const all = kindsFor(mode);
    const kinds = this.opts.kinds ? all.filter((k) => this.opts.kinds!.includes(k)) : all;
    const start = performance.now();
    const { counts, overlapped } = await runSchedule(c, devices, rng.fork(1), {
      untilMs: start + this.opts.faultMs,
      maxFaults: this.opts.maxFaults,
      kinds,
      again: this.opts.again,
      log: (f: FaultRecord) =>
        console.log(`${tag} +${((f.at - start) / 1000).toFixed(1)} s ${f.kind}: ${f.detail}`),
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
    const viaHaproxy = devices.filter((_, i) => i % 4 === 3).length;
    const table = resultTable(seed, result, counts, {
      'redis mode': mode,
      'run (s)': Math.round(faultSeconds),
      'devices (websocket/sse/poll)': `${DEVICES} (${TRANSPORTS.map((t) => devices.filter((d) => d.transport === t).length).join('/')})`,
      'devices via nginx/haproxy': `${DEVICES - viaHaproxy}/${viaHaproxy}`,
      publishers: PUBLISHERS,
      'fault pairs run at once': overlapped,
      'publish retries': publishers.reduce((s, p) => s + p.retries, 0),
    });
    console.log(`${tag} result\n${table}`);
    const refused = publishers.flatMap((p) => p.refused);
    report(tag, seed, result, refused, devices);
    return { result, counts, kinds, refused, table };
  }
}

/** What every campaign asserts: nothing accepted lost, duplicated to the app or reordered, no gap. */
export function expectClean(o: CampaignOutcome, seed: number, minAccepted: number): void {
  const { result } = o;
  expect(o.refused, 'answers other than 202/503/409-in-progress').toEqual([]);
  expect(
    o.kinds.filter((k) => !o.counts.has(k)),
    'fault kinds never injected',
  ).toEqual([]);
  expect(result.accepted, 'accepted notifications').toBeGreaterThanOrEqual(minAccepted);
  expect(result.lost, `lost (seed ${seed})`).toEqual([]);
  expect(result.duplicated, `duplicated to the app (seed ${seed})`).toEqual([]);
  expect(result.duplicatedByKey, `one key, two ids (seed ${seed})`).toEqual([]);
  expect(result.reorderedSeq, `reordered (seed ${seed})`).toEqual([]);
  expect(result.reorderedDirect, `reordered vs 202 order (seed ${seed})`).toEqual([]);
  expect(result.unexpected, `unexpected (seed ${seed})`).toEqual([]);
  expect(result.gaps, `gaps (seed ${seed}): none expected with a ${TTL_S} s TTL`).toEqual([]);
}

/** Details of whatever failed, so a red run says what to look at (with the seed). */
function report(tag: string, seed: number, r: CheckResult, refused: string[], devs: ChaosDevice[]): void {
  const lines: string[] = [];
  const few = <T>(xs: T[]) => JSON.stringify(xs.slice(0, 10));
  if (r.lost.length) lines.push(`lost: ${few(r.lost)}`);
  if (r.duplicated.length) lines.push(`duplicated: ${few(r.duplicated)}`);
  if (r.duplicatedByKey.length) lines.push(`one key, two ids: ${few(r.duplicatedByKey)}`);
  if (r.reorderedDirect.length) lines.push(`reordered vs 202: ${few(r.reorderedDirect)}`);
  if (r.unexpected.length) lines.push(`unexpected: ${few(r.unexpected)}`);
  if (r.gaps.length) lines.push(`gaps: ${few(r.gaps)}`);
  if (refused.length) lines.push(`refused: ${few(refused)}`);
  for (const d of devs) {
    if (d.errors.some((e) => e.includes('fatal'))) lines.push(`${d.device} errors: ${few(d.errors)}`);
  }
  if (r.maxWaitPair) lines.push(`longest wait: ${JSON.stringify(r.maxWaitPair)}`);
  if (lines.length) console.log(`${tag} details (seed ${seed})\n${lines.join('\n')}`);
}

async function waitUntil(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
