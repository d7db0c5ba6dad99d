import type { AppHandle } from '@herald/stack';
import type { ChaosCluster, RedisMode } from './cluster.js';
import { type ChaosDevice, sleep } from './load.js';
import {
  clusterFailover,
  clusterMasterKill9,
  sentinelFailover,
  sentinelMasterKill9,
} from './redis-failover.js';
import type { Rng } from './rng.js';

/** Every fault the campaign injects; a campaign injects each kind of its mode (kindsFor) at least once. */
export const FAULT_KINDS = [
  'node-kill9',
  'node-sigterm',
  'worker-kill9',
  'worker-sigterm',
  'api-kill9',
  'api-sigterm',
  'redis-restart',
  'node-redis-partition',
  'api-redis-partition',
  'worker-redis-partition',
  'redis-latency',
  'node-link-blackhole',
  'node-link-reset',
  'nginx-reload',
  'haproxy-reload',
  'device-restart',
  'sentinel-failover',
  'sentinel-master-kill9',
  'cluster-failover',
  'cluster-master-kill9',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that act on the one Redis server or on the fault proxies in front of it. */
const STANDALONE_ONLY: readonly FaultKind[] = [
  'redis-restart',
  'node-redis-partition',
  'api-redis-partition',
  'worker-redis-partition',
  'redis-latency',
];

/** The kinds that apply in a Redis mode (docs/guarantees.md, "Fault campaign", lists them). */
export function kindsFor(mode: RedisMode): FaultKind[] {
  return FAULT_KINDS.filter((k) => {
    if (k.startsWith('sentinel-')) return mode === 'sentinel';
    if (k.startsWith('cluster-')) return mode === 'cluster';
    return mode === 'standalone' || !STANDALONE_ONLY.includes(k);
  });
}

/** One line per fault, for the log of a run (printed on failure with the seed). */
export interface FaultRecord {
  kind: FaultKind;
  detail: string;
  at: number;
}

/** Stops an app (SIGKILL or SIGTERM), leaves it down `pauseMs`, starts it again (waits for /readyz). */
async function bounce(app: AppHandle, signal: 'SIGKILL' | 'SIGTERM', pauseMs: number): Promise<void> {
  if (signal === 'SIGKILL') await app.kill9();
  else await app.stop('SIGTERM');
  await sleep(pauseMs);
  await app.restart();
}

/**
 * Injects one fault and returns once it is over (the process restarted and ready, the partition
 * healed). Durations come from `rng`, so a seed replays the same schedule.
 */
export async function inject(
  c: ChaosCluster,
  devices: readonly ChaosDevice[],
  kind: FaultKind,
  rng: Rng,
): Promise<string> {
  const pause = rng.int(300, 3000);
  const node = rng.pick(c.nodes);
  switch (kind) {
    case 'node-kill9':
      await bounce(node, 'SIGKILL', pause);
      return `${node.name} down ${pause} ms`;
    case 'node-sigterm':
      await bounce(node, 'SIGTERM', pause);
      return `${node.name} drained, down ${pause} ms`;
    case 'worker-kill9':
      await bounce(c.worker, 'SIGKILL', pause);
      return `down ${pause} ms`;
    case 'worker-sigterm':
      await bounce(c.worker, 'SIGTERM', pause);
      return `down ${pause} ms`;
    case 'api-kill9':
      await bounce(c.api, 'SIGKILL', pause);
      return `down ${pause} ms`;
    case 'api-sigterm':
      await bounce(c.api, 'SIGTERM', pause);
      return `down ${pause} ms`;
    case 'redis-restart': {
      // SIGTERM (the AOF is flushed), started again on the same port and dir.
      await c.redis!.restart();
      return 'restarted';
    }
    case 'node-redis-partition':
    case 'api-redis-partition':
    case 'worker-redis-partition': {
      const name = kind === 'node-redis-partition' ? node.name : kind.split('-')[0]!;
      const proxy = c.redisProxies.get(name)!;
      const ms = rng.int(1500, 6000);
      // Half the time the partition ends with the connections cut (TCP gave up meanwhile), half the
      // time it heals with them intact (what was sent meanwhile then arrives).
      const cut = rng.next() < 0.5;
      proxy.stall();
      await sleep(ms);
      if (cut) proxy.reset();
      proxy.heal();
      return `${name} cut from Redis ${ms} ms, then ${cut ? 'connections reset' : 'healed'}`;
    }
    case 'redis-latency': {
      const ms = rng.int(20, 300);
      const hold = rng.int(1000, 4000);
      for (const p of c.redisProxies.values()) p.latency(ms);
      await sleep(hold);
      for (const p of c.redisProxies.values()) p.latency(0);
      return `+${ms} ms per chunk on every Redis link for ${hold} ms`;
    }
    case 'node-link-blackhole': {
      const ms = rng.int(1000, 5000);
      const proxy = c.linkProxies.get(node.name)!;
      proxy.blackhole(ms);
      await sleep(ms);
      proxy.heal();
      return `nginx->${node.name} ${ms} ms`;
    }
    case 'node-link-reset': {
      const n = c.linkProxies.get(node.name)!.reset();
      return `nginx->${node.name}: ${n} connections reset`;
    }
    case 'nginx-reload':
      await c.reloadBalancer();
      return `master ${c.nginx.pid} reloaded`;
    case 'haproxy-reload': {
      const before = await c.haproxy.procs();
      await c.reloadHaproxy();
      const after = await c.haproxy.procs();
      return `SIGUSR2 to master ${before.master}: workers ${before.workers.join(',')} -> ${after.workers.join(',')}`;
    }
    case 'sentinel-failover':
      return sentinelFailover(c.sentinel!);
    case 'sentinel-master-kill9':
      return sentinelMasterKill9(c.sentinel!, rng.int(0, 1500));
    case 'cluster-failover':
      return clusterFailover(c.redisCluster!, rng);
    case 'cluster-master-kill9':
      return clusterMasterKill9(c.redisCluster!, rng, rng.int(0, 1500));
    case 'device-restart': {
      const picked = rng.shuffle(devices).slice(0, rng.int(1, 3));
      await Promise.all(picked.map((d) => d.restart(pause)));
      return `${picked.map((d) => `${d.device} (${d.transport})`).join(', ')} restarted after ${pause} ms`;
    }
  }
}

/** What a fault acts on: two faults run at once only on different components. */
function component(kind: FaultKind): string {
  return kind.split('-')[0]!;
}

/**
 * The schedule: every kind once (and `again` twice) in a seeded order, then random kinds until `untilMs`
 * (a performance.now() bound). Between faults a quiet spell of 1 to 4 s; about one time in three
 * two faults on different components run at once (say, Redis restarts while a node is cut off).
 */
export async function runSchedule(
  c: ChaosCluster,
  devices: readonly ChaosDevice[],
  rng: Rng,
  opts: {
    untilMs: number;
    log: (r: FaultRecord) => void;
    maxFaults: number;
    /** The kinds to draw from (kindsFor(mode)). */
    kinds: readonly FaultKind[];
    /** Kinds queued once more at the start (a mode's own failovers, so a short run has a few). */
    again?: readonly FaultKind[];
  },
): Promise<{ counts: Map<FaultKind, number>; overlapped: number }> {
  const counts = new Map<FaultKind, number>();
  const queue = rng.shuffle([...opts.kinds, ...(opts.again ?? [])]);
  const take = (): FaultKind => queue.shift() ?? rng.pick(opts.kinds);
  let done = 0;
  let overlapped = 0;
  while (done < opts.maxFaults && (queue.length > 0 || performance.now() < opts.untilMs)) {
    const kinds = [take()];
    if (rng.next() < 0.35) {
      const i = queue.findIndex((k) => component(k) !== component(kinds[0]!));
      const other = i >= 0 ? queue.splice(i, 1)[0]! : rng.pick(opts.kinds);
      if (component(other) !== component(kinds[0]!)) kinds.push(other);
      else queue.push(other);
    }
    if (kinds.length > 1) overlapped++;
    await sleep(rng.int(1000, 4000));
    // Each fault draws from its own generator, so running them at once keeps the replay exact.
    const forks = kinds.map((_, j) => rng.fork(done * 2 + j));
    await Promise.all(
      kinds.map(async (kind, j) => {
        const at = performance.now();
        const detail = await inject(c, devices, kind, forks[j]!);
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        opts.log({ kind, detail: kinds.length > 1 ? `${detail} (overlapping)` : detail, at });
      }),
    );
    done += kinds.length;
  }
  return { counts, overlapped };
}
