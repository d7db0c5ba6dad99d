import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { ManagedProcess } from './proc.js';
import { type RedisHandle, redisPing, redisServerBin, startRedis } from './redis.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';

/** Runs one redis-cli command against a port and returns its raw reply text. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', HOST, '-p', String(port), ...args], { timeout: 10_000 });
  return stdout.trim();
}

export interface ClusterNodeRole {
  id: string;
  port: number;
  role: 'master' | 'slave';
  masterId: string;
  failed: boolean;
}

/** CLUSTER NODES as seen from one node: `<id> <ip:port@cport> <flags> <master> ...` per line. */
export async function nodeRoles(port: number): Promise<ClusterNodeRole[]> {
  const text = await redisCli(port, 'CLUSTER', 'NODES');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, addr, flags, masterId] = line.split(' ') as [string, string, string, string];
      const f = flags.split(',');
      return {
        id,
        port: Number(addr.split('@')[0]!.split(':').pop()),
        role: f.includes('master') ? ('master' as const) : ('slave' as const),
        masterId,
        failed: f.includes('fail') || f.includes('fail?'),
      };
    });
}

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RedisClusterHandle {
  /** `redis+cluster://127.0.0.1:p1,...` for REDIS_URL. */
  url: string;
  servers: RedisHandle[];
  /** Ports of the current masters. */
  masters(): Promise<number[]>;
  /** Promotes the replica of the master on `masterPort` (CLUSTER FAILOVER run on the replica); resolves when done. */
  failover(masterPort: number): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A local Redis Cluster: `masters` masters with one replica each, on free ports of 127.0.0.1,
 * made with `redis-cli --cluster create`. AOF on, as in production.
 */
export async function startRedisCluster({
  masters = 3,
  dir = tmp('herald-cluster-'),
} = {}): Promise<RedisClusterHandle> {
  const servers: RedisHandle[] = [];
  const stop = async () => {
    await Promise.allSettled(servers.map((s) => s.stop()));
  };
  try {
    for (let i = 0; i < masters * 2; i++) {
      servers.push(
        await startRedis({
          dir: path.join(dir, `n${i}`),
          // The bus port defaults to port + 10000, which may be taken: pick a free one.
          extraArgs: [
            '--cluster-enabled',
            'yes',
            '--cluster-port',
            String(await freePort(HOST)),
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      );
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...servers.map((s) => `${HOST}:${s.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { timeout: 60_000 },
    );
    // Slots are served (cluster_state:ok) before every replica is attached and in sync; a
    // failover test needs both.
    await waitFor(
      async () => {
        const infos = await Promise.all(servers.map((s) => redisCli(s.port, 'CLUSTER', 'INFO')));
        if (!infos.every((i) => i.includes('cluster_state:ok'))) return false;
        const roles = (await Promise.all(servers.map((s) => nodeRoles(s.port)))).flat();
        if (roles.filter((r) => r.role === 'slave').length !== masters * servers.length) return false;
        const repl = await Promise.all(servers.map((s) => redisCli(s.port, 'INFO', 'replication')));
        return repl.every((i) => i.includes('role:master') || i.includes('master_link_status:up'));
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'cluster_state:ok and every replica in sync' },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const masterPorts = async () =>
    (await nodeRoles(servers[0]!.port)).filter((n) => n.role === 'master' && !n.failed).map((n) => n.port);
  return {
    url: `redis+cluster://${servers.map((s) => `${HOST}:${s.port}`).join(',')}`,
    servers,
    masters: masterPorts,
    async failover(masterPort: number) {
      const all = await nodeRoles(servers[0]!.port);
      const master = all.find((n) => n.port === masterPort);
      const replica = all.find((n) => n.role === 'slave' && n.masterId === master?.id);
      if (!replica) throw new Error(`no replica of ${masterPort}`);
      const replicaPort = replica.port;
      await redisCli(replicaPort, 'CLUSTER', 'FAILOVER');
      await waitFor(async () => (await redisCli(replicaPort, 'ROLE')).startsWith('master'), {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `replica ${replicaPort} to become master`,
      });
      return replicaPort;
    },
    stop,
  };
}

export interface RedisSentinelHandle {
  /** `redis+sentinel://127.0.0.1:s1,.../herald` for REDIS_URL. */
  url: string;
  masterName: string;
  master: RedisHandle;
  replica: RedisHandle;
  sentinels: ManagedProcess[];
  /** Port of the master the sentinels announce now. */
  currentMaster(): Promise<number>;
  /** SENTINEL FAILOVER; resolves when the sentinels announce the new master. */
  failover(): Promise<number>;
  stop(): Promise<void>;
}

/** One master, one replica and three sentinels on 127.0.0.1 (quorum 2). */
export async function startRedisSentinel({
  dir = tmp('herald-sentinel-'),
  masterName = 'herald',
} = {}): Promise<RedisSentinelHandle> {
  const master = await startRedis({ dir: path.join(dir, 'master') });
  const replica = await startRedis({
    dir: path.join(dir, 'replica'),
    extraArgs: ['--replicaof', HOST, String(master.port)],
  });
  const sentinels: ManagedProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.allSettled(sentinels.map((s) => s.stop('SIGTERM', 5000)));
    await Promise.allSettled([replica.stop(), master.stop()]);
  };
  try {
    await waitFor(
      async () => (await redisCli(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
      {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'replica linked to master',
      },
    );
    for (let i = 0; i < 3; i++) {
      const port = await freePort(HOST);
      const d = path.join(dir, `s${i}`);
      fs.mkdirSync(d, { recursive: true });
      const conf = path.join(d, 'sentinel.conf');
      fs.writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir ${d}`,
          `sentinel monitor ${masterName} ${HOST} ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} 2000`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(
        await ManagedProcess.start({
          command: redisServerBin(),
          args: [conf, '--sentinel'],
          logFile: path.join(d, 'sentinel.log'),
          name: `sentinel:${port}`,
          cwd: d,
        }),
      );
      ports.push(port);
      await waitFor(() => redisPing(HOST, port), { timeoutMs: 10_000, what: `sentinel on ${port}` });
    }
    // Every sentinel must know the others and the replica before a failover can be asked for.
    await waitFor(
      async () => {
        const infos = await Promise.all(ports.map((p) => redisCli(p, 'SENTINEL', 'MASTER', masterName)));
        return infos.every((i) => /num-other-sentinels\n2\b/.test(i) && /num-slaves\n1\b/.test(i));
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'sentinels to discover each other and the replica' },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const currentMaster = async () => {
    const out = await redisCli(ports[0]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName);
    return Number(out.split('\n')[1]);
  };
  return {
    url: `redis+sentinel://${ports.map((p) => `${HOST}:${p}`).join(',')}/${masterName}`,
    masterName,
    master,
    replica,
    sentinels,
    currentMaster,
    async failover() {
      const before = await currentMaster();
      await redisCli(ports[0]!, 'SENTINEL', 'FAILOVER', masterName);
      let now = before;
      await waitFor(
        async () => {
          now = await currentMaster();
          return now !== before && (await redisCli(now, 'ROLE')).startsWith('master');
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'sentinel failover' },
      );
      return now;
    },
    stop,
  };
}

/** A Redis a test started: where it is and how to stop it. */
export interface TestRedis {
  url: string;
  stop(): Promise<unknown>;
}

/**
 * The two set-ups the store-level tests run on (`describe.each(REDIS_MODES)`): one redis-server
 * without AOF, and a Redis Cluster of 3 masters (keys of different slots on different masters).
 */
export const REDIS_MODES: readonly { name: string; start(): Promise<TestRedis> }[] = [
  { name: 'one Redis', start: () => startRedis({ appendonly: false }) },
  { name: 'Redis Cluster', start: () => startRedisCluster({ masters: 3 }) },
];
