import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type AppHandle,
  type HaproxyHandle,
  type NginxHandle,
  type RedisClusterHandle,
  type RedisHandle,
  type RedisSentinelHandle,
  startApi,
  startHaproxy,
  startNginx,
  startNode,
  startRedis,
  startRedisCluster,
  startRedisSentinel,
  startWorker,
} from '@herald/stack';
import { FaultProxy } from '../fault-proxy.js';
import { API_KEY, TOKEN_SECRET } from '../system.js';

/**
 * Where Redis runs: one server (standalone), 1 master + 1 replica + 3 sentinels (sentinel), or
 * 3 masters with a replica each (cluster). Only standalone has a fault proxy per process (a
 * Sentinel or Cluster client connects to the addresses the servers announce, not to one URL).
 */
export type RedisMode = 'standalone' | 'sentinel' | 'cluster';

/**
 * The local stack of infra/local (Redis with AOF, API, worker, N nodes, nginx stream), built from
 * the stack's parts so a FaultProxy sits on every link a campaign cuts:
 *
 *   api/worker/node-i --redis--> [redisProxy of that process] --> redis-server   (standalone)
 *   nginx   --> [linkProxy of node-i] --> node-i
 *   HAProxy --> [linkProxy of node-i] --> node-i   (a second balancer over the same nodes)
 *
 * One Redis proxy per process, so one node (or the API alone) can be partitioned from Redis while
 * the others go on.
 */
export interface ChaosCluster {
  readonly dir: string;
  readonly mode: RedisMode;
  /** Standalone mode's Redis (undefined in the other modes). */
  readonly redis: RedisHandle | undefined;
  readonly sentinel: RedisSentinelHandle | undefined;
  readonly redisCluster: RedisClusterHandle | undefined;
  /** By process name: 'api', 'worker', 'node-1', ... (standalone mode only; empty otherwise). */
  readonly redisProxies: ReadonlyMap<string, FaultProxy>;
  /** By node name: the link between nginx and that node. */
  readonly linkProxies: ReadonlyMap<string, FaultProxy>;
  readonly api: AppHandle;
  readonly worker: AppHandle;
  readonly nodes: readonly AppHandle[];
  readonly nginx: NginxHandle;
  /** HAProxy in master-worker mode, in front of the same link proxies as nginx. */
  readonly haproxy: HaproxyHandle;
  readonly apiUrl: string;
  /** Through nginx. */
  readonly wsUrl: string;
  /** Through HAProxy. */
  readonly haproxyWsUrl: string;
  /** Reload nginx with the same upstreams: `nginx -s reload` (SIGHUP to its master), waits for new workers. */
  reloadBalancer(): Promise<void>;
  /**
   * Graceful HAProxy reload with the same config: SIGUSR2 to the master, which starts new workers;
   * the old ones stop listening and keep their sessions until they close or hard-stop-after.
   */
  reloadHaproxy(): Promise<void>;
  /** Heals every proxy. */
  healAll(): void;
  stop(): Promise<void>;
}

export async function startChaosCluster(opts: {
  nodes: number;
  mode?: RedisMode;
  env?: Record<string, string>;
}): Promise<ChaosCluster> {
  const mode = opts.mode ?? 'standalone';
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-chaos-'));
  const logDir = path.join(process.env.HERALD_TEST_LOGS ?? dir, 'logs');
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    // Reverse start order; every stop runs even if one fails.
    for (const s of stops.reverse()) await s().catch(() => {});
    stops.length = 0;
  };
  try {
    const names = ['api', 'worker', ...Array.from({ length: opts.nodes }, (_, i) => `node-${i + 1}`)];
    const redisProxies = new Map<string, FaultProxy>();
    let redis: RedisHandle | undefined;
    let sentinel: RedisSentinelHandle | undefined;
    let redisCluster: RedisClusterHandle | undefined;
    let sharedUrl = '';
    if (mode === 'standalone') {
      const r = await startRedis({ dir: path.join(dir, 'redis'), logFile: path.join(logDir, 'redis.log') });
      redis = r;
      stops.push(() => r.stop());
      const target = { host: '127.0.0.1', port: r.port };
      for (const name of names) {
        const p = await FaultProxy.start({ target, name: `redis<-${name}` });
        redisProxies.set(name, p);
        stops.push(() => p.close());
      }
    } else if (mode === 'sentinel') {
      const s = await startRedisSentinel({ dir: path.join(dir, 'sentinel') });
      sentinel = s;
      stops.push(() => s.stop());
      sharedUrl = s.url;
    } else {
      const rc = await startRedisCluster({ masters: 3, dir: path.join(dir, 'cluster') });
      redisCluster = rc;
      stops.push(() => rc.stop());
      sharedUrl = rc.url;
    }
    const redisUrlOf = (name: string) => redisProxies.get(name)?.url('redis') ?? sharedUrl;
    const env = { HERALD_FLUSH_MS: '50', ...opts.env };
    const common = { logDir, logLevel: 'warn', env };
    const [api, worker, ...nodes] = await Promise.all([
      startApi({
        ...common,
        redisUrl: redisUrlOf('api'),
        apiKeys: [API_KEY],
        tokenSecret: TOKEN_SECRET,
      }),
      startWorker({ ...common, redisUrl: redisUrlOf('worker') }),
      ...names.slice(2).map((nodeId) =>
        startNode({
          ...common,
          nodeId,
          tokenSecret: TOKEN_SECRET,
          redisUrl: redisUrlOf(nodeId),
        }),
      ),
    ]);
    for (const a of [api!, worker!, ...nodes]) stops.push(() => a.stop());
    const linkProxies = new Map<string, FaultProxy>();
    for (const n of nodes) {
      const p = await FaultProxy.start({
        target: { host: '127.0.0.1', port: n.port },
        name: `nginx->${n.name}`,
      });
      linkProxies.set(n.name, p);
      stops.push(() => p.close());
    }
    const upstreams = [...linkProxies.values()].map((p) => ({ host: '127.0.0.1', port: p.port }));
    const nginx = await startNginx({
      upstreams,
      listenHost: '127.0.0.1',
      dir: path.join(dir, 'nginx'),
      logDir,
      errorLogName: 'nginx-error.log',
      accessLogName: 'nginx-access.log',
      // A killed node is retried after 2 s, not nginx's 10 s default, so the survivors are not
      // overloaded longer than the fault lasts.
      failTimeoutS: 2,
    });
    stops.push(() => nginx.stop());
    const haproxy = await startHaproxy({
      upstreams,
      listenHost: '127.0.0.1',
      dir: path.join(dir, 'haproxy'),
      logDir,
      logName: 'haproxy.log',
      // Sessions an old worker still holds are cut 15 s after a reload (default 30): within a
      // short campaign, so its devices see both the graceful part and the cut.
      hardStopAfterS: 15,
    });
    stops.push(() => haproxy.stop());
    let stopping: Promise<void> | undefined;
    return {
      dir,
      mode,
      redis,
      sentinel,
      redisCluster,
      redisProxies,
      linkProxies,
      api: api!,
      worker: worker!,
      nodes,
      nginx,
      haproxy,
      apiUrl: api!.url,
      wsUrl: `ws://127.0.0.1:${nginx.port}/v1/ws`,
      haproxyWsUrl: `ws://127.0.0.1:${haproxy.port}/v1/ws`,
      reloadBalancer: () => nginx.reload(upstreams),
      reloadHaproxy: () => haproxy.reload(upstreams),
      healAll() {
        for (const p of [...redisProxies.values(), ...linkProxies.values()]) p.heal();
      },
      stop() {
        stopping ??= stopAll().finally(() => {
          if (!process.env.HERALD_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
        });
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
