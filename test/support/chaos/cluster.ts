import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type AppHandle,
  type NginxHandle,
  type RedisHandle,
  startApi,
  startNginx,
  startNode,
  startRedis,
  startWorker,
} from '@herald/stack';
import { FaultProxy } from '../fault-proxy.js';
import { API_KEY, TOKEN_SECRET } from '../system.js';

/**
 * The local stack of infra/local (Redis with AOF, API, worker, N nodes, nginx stream), built from
 * the stack's parts so a FaultProxy sits on every link a campaign cuts:
 *
 *   api/worker/node-i --redis--> [redisProxy of that process] --> redis-server
 *   nginx --> [linkProxy of node-i] --> node-i
 *
 * One Redis proxy per process, so one node (or the API alone) can be partitioned from Redis while
 * the others go on.
 */
export interface ChaosCluster {
  readonly dir: string;
  readonly redis: RedisHandle;
  /** By process name: 'api', 'worker', 'node-1', ... */
  readonly redisProxies: ReadonlyMap<string, FaultProxy>;
  /** By node name: the link between nginx and that node. */
  readonly linkProxies: ReadonlyMap<string, FaultProxy>;
  readonly api: AppHandle;
  readonly worker: AppHandle;
  readonly nodes: readonly AppHandle[];
  readonly nginx: NginxHandle;
  readonly apiUrl: string;
  readonly wsUrl: string;
  /** Reload nginx with the same upstreams: `nginx -s reload` (SIGHUP to its master), waits for new workers. */
  reloadBalancer(): Promise<void>;
  /** Heals every proxy. */
  healAll(): void;
  stop(): Promise<void>;
}

export async function startChaosCluster(opts: {
  nodes: number;
  env?: Record<string, string>;
}): Promise<ChaosCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-chaos-'));
  const logDir = path.join(process.env.HERALD_TEST_LOGS ?? dir, 'logs');
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    // Reverse start order; every stop runs even if one fails.
    for (const s of stops.reverse()) await s().catch(() => {});
    stops.length = 0;
  };
  try {
    const redis = await startRedis({ dir: path.join(dir, 'redis'), logFile: path.join(logDir, 'redis.log') });
    stops.push(() => redis.stop());
    const target = { host: '127.0.0.1', port: redis.port };
    const names = ['api', 'worker', ...Array.from({ length: opts.nodes }, (_, i) => `node-${i + 1}`)];
    const redisProxies = new Map<string, FaultProxy>();
    for (const name of names) {
      const p = await FaultProxy.start({ target, name: `redis<-${name}` });
      redisProxies.set(name, p);
      stops.push(() => p.close());
    }
    const env = { HERALD_FLUSH_MS: '50', ...opts.env };
    const common = { logDir, logLevel: 'warn', env };
    const [api, worker, ...nodes] = await Promise.all([
      startApi({
        ...common,
        redisUrl: redisProxies.get('api')!.url('redis'),
        apiKeys: [API_KEY],
        tokenSecret: TOKEN_SECRET,
      }),
      startWorker({ ...common, redisUrl: redisProxies.get('worker')!.url('redis') }),
      ...names.slice(2).map((nodeId) =>
        startNode({
          ...common,
          nodeId,
          tokenSecret: TOKEN_SECRET,
          redisUrl: redisProxies.get(nodeId)!.url('redis'),
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
    let stopping: Promise<void> | undefined;
    return {
      dir,
      redis,
      redisProxies,
      linkProxies,
      api: api!,
      worker: worker!,
      nodes,
      nginx,
      apiUrl: api!.url,
      wsUrl: `ws://127.0.0.1:${nginx.port}/v1/ws`,
      reloadBalancer: () => nginx.reload(upstreams),
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
