import {
  nodeRoles,
  type RedisClusterHandle,
  type RedisHandle,
  type RedisSentinelHandle,
  redisCli,
  waitFor,
} from '@herald/stack';
import { sleep } from './load.js';
import type { Rng } from './rng.js';

/**
 * The campaign's Redis failovers, in Sentinel mode (1 master, 1 replica, 3 sentinels) and in
 * Cluster mode (3 masters with a replica each). Each returns once the setup is whole again: a new
 * master serving and the old one back as its replica, in sync. That is also when a
 * HERALD_REDIS_MIN_REPLICAS=1 setup accepts writes again (one replica per master here).
 */

/** Bound on every wait here: a failover on this loaded 2-core machine takes 3 to 8 s. */
const WAIT_MS = 45_000;

/** Until the master on `port` has a replica online (INFO replication: `slave0:...state=online`). */
async function replicaOnline(port: number): Promise<void> {
  await waitFor(async () => /slave0:.*state=online/.test(await redisCli(port, 'INFO', 'replication')), {
    timeoutMs: WAIT_MS,
    intervalMs: 200,
    what: `a replica online on ${port}`,
  });
}

/** SENTINEL FAILOVER (a planned switch: the master is demoted after the replica caught up). */
export async function sentinelFailover(s: RedisSentinelHandle): Promise<string> {
  const before = await s.currentMaster();
  const now = await s.failover();
  await replicaOnline(now);
  return `SENTINEL FAILOVER ${before} -> ${now}, old master back as replica`;
}

/**
 * kill -9 of the master: the sentinels see it down (down-after 2 s), elect one of theirs and
 * promote the replica; after `pauseMs` more the dead one is started again (its AOF) and the
 * sentinels make it a replica of the new master.
 */
export async function sentinelMasterKill9(s: RedisSentinelHandle, pauseMs: number): Promise<string> {
  const old = await s.currentMaster();
  const [dying, other]: [RedisHandle, RedisHandle] =
    s.master.port === old ? [s.master, s.replica] : [s.replica, s.master];
  const t0 = performance.now();
  await dying.kill9();
  await waitFor(
    async () =>
      (await s.currentMaster().catch(() => old)) === other.port &&
      (await redisCli(other.port, 'ROLE')).startsWith('master'),
    { timeoutMs: WAIT_MS, intervalMs: 100, what: `the sentinels to promote ${other.port}` },
  );
  const promotedMs = performance.now() - t0;
  await sleep(pauseMs);
  await dying.restart();
  await replicaOnline(other.port);
  return `master ${old} killed, ${other.port} promoted after ${Math.round(promotedMs)} ms, old one restarted ${pauseMs} ms later`;
}

/** CLUSTER NODES as one node sees it, with `master` for the role (infra/local's reading). */
async function roles(port: number) {
  return (await nodeRoles(port)).map((n) => ({ ...n, master: n.role === 'master' }));
}

/** Every node: cluster_state:ok, sees `masters` healthy masters with a replica each, replicas in sync. */
async function clusterWhole(c: RedisClusterHandle, masters: number): Promise<void> {
  await waitFor(
    async () => {
      for (const s of c.servers) {
        if (!(await redisCli(s.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
        const r = await roles(s.port);
        if (r.some((n) => n.failed)) return false;
        const ms = r.filter((n) => n.master);
        if (ms.length !== masters || !ms.every((m) => r.some((n) => !n.master && n.masterId === m.id)))
          return false;
        const repl = await redisCli(s.port, 'INFO', 'replication');
        if (!repl.includes('role:master') && !repl.includes('master_link_status:up')) return false;
      }
      return true;
    },
    {
      timeoutMs: WAIT_MS,
      intervalMs: 200,
      what: 'the cluster whole again (every slot served, replicas in sync)',
    },
  );
}

/** CLUSTER FAILOVER on the replica of a random master (a planned switch). */
export async function clusterFailover(c: RedisClusterHandle, rng: Rng): Promise<string> {
  const masters = (await c.masters()).sort((a, b) => a - b);
  const m = rng.pick(masters);
  const promoted = await c.failover(m);
  await clusterWhole(c, masters.length);
  return `CLUSTER FAILOVER: ${m} -> ${promoted}`;
}

/**
 * kill -9 of a random master: its replica is promoted once the others mark it failed
 * (cluster-node-timeout 2 s); after `pauseMs` more it is started again (nodes.conf, AOF) and
 * rejoins as the replica of the promoted one.
 */
export async function clusterMasterKill9(c: RedisClusterHandle, rng: Rng, pauseMs: number): Promise<string> {
  const masters = (await c.masters()).sort((a, b) => a - b);
  const m = rng.pick(masters);
  const server = c.servers.find((s) => s.port === m)!;
  const witness = c.servers.find((s) => s.port !== m)!;
  const all = await roles(witness.port);
  const id = all.find((n) => n.port === m)!.id;
  const replica = all.find((n) => !n.master && n.masterId === id);
  if (!replica) throw new Error(`no replica of ${m}`);
  const t0 = performance.now();
  await server.kill9();
  await waitFor(async () => (await redisCli(replica.port, 'ROLE')).startsWith('master'), {
    timeoutMs: WAIT_MS,
    intervalMs: 100,
    what: `replica ${replica.port} promoted`,
  });
  const promotedMs = performance.now() - t0;
  await sleep(pauseMs);
  await server.restart();
  await clusterWhole(c, masters.length);
  return `master ${m} killed, ${replica.port} promoted after ${Math.round(promotedMs)} ms, old one restarted ${pauseMs} ms later`;
}
