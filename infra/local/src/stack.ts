import fs from 'node:fs';
import path from 'node:path';
import { type AppHandle, type AppKind, startApi, startNode, startWorker } from './apps.js';
import type { Balancer, BalancerKind, Upstream } from './balancer.js';
import { type HaproxyHandle, startHaproxy } from './haproxy.js';
import { type NginxHandle, startNginx } from './nginx.js';
import { freePort } from './ports.js';
import { type RedisHandle, startRedis } from './redis.js';

export interface StackOptions {
  /** Number of push nodes (default 3). */
  nodes?: number;
  /** Use this Redis instead of starting one (then `stack.redis` is null and stop() leaves it alone). */
  redisUrl?: string;
  /** Redis data in `<dataDir>/redis`, the balancer prefix in `<dataDir>/nginx` or `<dataDir>/haproxy`. */
  dataDir: string;
  /**
   * One log file per process: redis.log, api.log, worker.log, node-1.log, and nginx-error.log +
   * nginx-access.log (nginx) or haproxy.log (HAProxy).
   */
  logDir: string;
  apiKeys: readonly string[];
  tokenSecret: string;
  /** Bind address of the apps and the balancer (default 127.0.0.1). */
  host?: string;
  /** The L4 balancer in front of the nodes (default 'nginx'). */
  balancer?: BalancerKind;
  /**
   * The balancer sends a PROXY protocol header to the nodes (nginx: v1, HAProxy: v2), and the nodes
   * get HERALD_PROXY_PROTOCOL=true so they expect it (default false; `nginx.proxyProtocol` is the
   * older spelling and counts too).
   */
  proxyProtocol?: boolean;
  /** Default: free ports. */
  apiPort?: number;
  /** Port of the balancer, nginx or HAProxy (default: a free port). */
  balancerPort?: number;
  /** Older name of `balancerPort` (used for either balancer when balancerPort is not set). */
  nginxPort?: number;
  workerPort?: number;
  /** Ports of node-1, node-2, ... (missing ones: free ports). */
  nodePorts?: readonly number[];
  /** Port of the Redis this stack starts (default: a free port). */
  redisPort?: number;
  /** Extra environment for every app. */
  env?: Record<string, string>;
  /** HERALD_LOG_LEVEL of every app (default env.HERALD_LOG_LEVEL, else 'info'). */
  logLevel?: string;
  /** nginx tuning (defaults: maxConns 10000, proxyTimeoutS 75). */
  nginx?: { maxConns?: number; proxyTimeoutS?: number; proxyProtocol?: boolean; workerProcesses?: number };
  /** HAProxy tuning (defaults: maxConns 10000, timeoutS 75, health check every 500 ms, fall 3, rise 2). */
  haproxy?: {
    maxConns?: number;
    timeoutS?: number;
    connectTimeoutS?: number;
    checkIntervalMs?: number;
    checkFall?: number;
    checkRise?: number;
    hardStopAfterS?: number;
  };
  /** Readiness timeout per process (default 20 s). */
  readyTimeoutMs?: number;
  /** Scripts to run instead of apps/<app>/dist/main.js (tests of the launcher itself). */
  scripts?: Partial<Record<AppKind, string>>;
}

/**
 * A running stack. `B` is the balancer's handle type: `NginxHandle` or `HaproxyHandle` when the
 * balancer kind is known at compile time (see the `startStack` overloads), else `Balancer`.
 */
export interface Stack<B extends Balancer = Balancer> {
  /** The Redis this stack started, or null when `redisUrl` was given. */
  readonly redis: RedisHandle | null;
  readonly redisUrl: string;
  readonly api: AppHandle;
  readonly worker: AppHandle;
  /** node-1 ... node-N (addNode/removeNode change this list). */
  readonly nodes: AppHandle[];
  /** The L4 balancer in front of the nodes (nginx or HAProxy; see `balancer.kind`). */
  readonly balancer: B;
  /** The same object as `balancer` (kept from when nginx was the only balancer; it is HAProxy in a HAProxy stack). */
  readonly nginx: B;
  /** `http://<host>:<apiPort>` */
  readonly apiUrl: string;
  /** `ws://127.0.0.1:<balancerPort>/v1/ws` (through the balancer). */
  readonly wsUrl: string;
  /** Starts node-(N+1) and adds it to the balancer (reload). */
  addNode(): Promise<AppHandle>;
  /** Removes a node from the balancer (reload), then stops it with SIGTERM (it drains). */
  removeNode(nodeId: string): Promise<void>;
  /** Stops the balancer, nodes, api, worker, then Redis (if owned). Idempotent. */
  stop(): Promise<void>;
}

/** Runs every stop, even when some fail; throws the first failure at the end. */
async function stopAll(stops: Array<() => Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(stops.map((s) => s()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Starts Redis (unless `redisUrl` is given), the worker, the API and N push nodes (started in
 * parallel, each waited on /readyz), then the balancer (nginx by default, or HAProxy) in front of
 * the nodes. On any failure everything already started is stopped and the error is rethrown.
 */
export function startStack(options: StackOptions & { balancer?: 'nginx' }): Promise<Stack<NginxHandle>>;
export function startStack(options: StackOptions & { balancer: 'haproxy' }): Promise<Stack<HaproxyHandle>>;
export function startStack(options: StackOptions): Promise<Stack>;
export async function startStack(options: StackOptions): Promise<Stack> {
  const host = options.host ?? '127.0.0.1';
  const localHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  const nodeCount = options.nodes ?? 3;
  const logDir = path.resolve(options.logDir);
  const dataDir = path.resolve(options.dataDir);
  fs.mkdirSync(logDir, { recursive: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const kind: BalancerKind = options.balancer ?? 'nginx';
  if (kind !== 'nginx' && kind !== 'haproxy') throw new Error(`unknown balancer ${String(kind)}`);
  const proxyProtocol = options.proxyProtocol ?? options.nginx?.proxyProtocol ?? false;

  let redis: RedisHandle | null = null;
  let api: AppHandle | undefined;
  let worker: AppHandle | undefined;
  const nodes: AppHandle[] = [];
  let balancer: Balancer | undefined;
  let nextNodeIndex = 1;

  // Reverse order of the data flow; every stage runs even when an earlier one failed.
  const teardown = async () => {
    const stages: Array<Array<() => Promise<unknown>>> = [
      [async () => balancer?.stop()],
      nodes.map((n) => () => n.stop()),
      [async () => api?.stop(), async () => worker?.stop()],
      [async () => redis?.stop()],
    ];
    let firstError: unknown;
    for (const stage of stages) {
      await stopAll(stage).catch((err: unknown) => {
        firstError ??= err;
      });
    }
    if (firstError !== undefined) throw firstError;
  };

  try {
    if (!options.redisUrl) {
      redis = await startRedis({
        dir: path.join(dataDir, 'redis'),
        port: options.redisPort,
        logFile: path.join(logDir, 'redis.log'),
        readyTimeoutMs,
      });
    }
    const redisUrl = options.redisUrl ?? redis!.url;
    const common = {
      redisUrl,
      host,
      logDir,
      logLevel: options.logLevel,
      env: options.env,
      readyTimeoutMs,
    };
    const launchNode = async (port?: number) => {
      const nodeId = `node-${nextNodeIndex++}`;
      const node = await startNode({
        ...common,
        // The nodes must expect the PROXY header exactly when the balancer sends it.
        env: proxyProtocol ? { ...options.env, HERALD_PROXY_PROTOCOL: 'true' } : options.env,
        nodeId,
        tokenSecret: options.tokenSecret,
        port,
        script: options.scripts?.node,
      });
      nodes.push(node);
      nodes.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
      return node;
    };

    // Chosen before the API starts: the console tells browsers where the WebSocket is.
    const listenPort = options.balancerPort ?? options.nginxPort ?? (await freePort(localHost));
    const starts: Array<Promise<unknown>> = [
      startWorker({ ...common, port: options.workerPort, script: options.scripts?.worker }).then((w) => {
        worker = w;
      }),
      startApi({
        ...common,
        // The console's demo device needs a token, and the URL of the balancer.
        env: { HERALD_PUBLIC_WS_URL: `ws://${localHost}:${listenPort}/v1/ws`, ...options.env },
        tokenSecret: options.tokenSecret,
        apiKeys: options.apiKeys,
        port: options.apiPort,
        script: options.scripts?.api,
      }).then((a) => {
        api = a;
      }),
    ];
    for (let i = 0; i < nodeCount; i++) starts.push(launchNode(options.nodePorts?.[i]));
    const results = await Promise.allSettled(starts);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    const upstreamsOf = (): Upstream[] => nodes.map((n) => ({ host: localHost, port: n.port }));
    if (kind === 'haproxy') {
      balancer = await startHaproxy({
        upstreams: upstreamsOf(),
        listenHost: host,
        listenPort,
        dir: path.join(dataDir, 'haproxy'),
        logDir,
        logName: 'haproxy.log',
        readyTimeoutMs,
        ...options.haproxy,
        proxyProtocol,
      });
    } else {
      balancer = await startNginx({
        upstreams: upstreamsOf(),
        listenHost: host,
        listenPort,
        dir: path.join(dataDir, 'nginx'),
        logDir,
        errorLogName: 'nginx-error.log',
        accessLogName: 'nginx-access.log',
        readyTimeoutMs,
        ...options.nginx,
        proxyProtocol,
      });
    }

    const lb = balancer;
    let stopping: Promise<void> | undefined;
    return {
      redis,
      redisUrl,
      api: api!,
      worker: worker!,
      nodes,
      balancer: lb,
      nginx: lb,
      apiUrl: api!.url,
      wsUrl: `ws://${localHost}:${lb.port}/v1/ws`,
      async addNode() {
        const node = await launchNode();
        await lb.reload(upstreamsOf());
        return node;
      },
      async removeNode(nodeId: string) {
        const index = nodes.findIndex((n) => n.name === nodeId);
        if (index < 0) throw new Error(`no node ${nodeId}`);
        const [node] = nodes.splice(index, 1);
        if (nodes.length > 0) await lb.reload(upstreamsOf());
        await node!.stop();
      },
      stop() {
        stopping ??= teardown();
        return stopping;
      },
    };
  } catch (err) {
    await teardown().catch(() => {});
    throw err;
  }
}
