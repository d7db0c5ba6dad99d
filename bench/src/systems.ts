import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findExecutable,
  freePort,
  ManagedProcess,
  type RedisHandle,
  renderNginxConf,
  type Stack,
  startRedis,
  startRedisCluster,
  startStack,
  waitForTcp,
} from '@herald/stack';
import { Redis } from 'ioredis';
import { startHeraldFloor, startWsFloor } from './floors.js';
import { socketsPerProcess } from './limits.js';
import { startNchan } from './nchan.js';
import { startPeerProcesses } from './peer-processes.js';
import { nginxGroup, type ProcGroup } from './procstat.js';
import {
  API_KEY,
  type RunningSystem,
  type StartOptions,
  type SystemName,
  type Target,
  TOKEN_SECRET,
} from './system-types.js';

export {
  API_KEY,
  type RunningSystem,
  SSE_ONLY,
  SSE_SCENARIOS,
  SSE_SYSTEMS,
  type StartOptions,
  SYSTEMS,
  type SystemName,
  type Target,
  TOKEN_SECRET,
} from './system-types.js';

const ok2xx = (s: number) => s >= 200 && s < 300;

/** One Herald publish body (POST /v1/notifications, or an item of a batch). */
function heraldPublish(target: Target, body: string): string {
  const to =
    target.kind === 'topic'
      ? `{"topic":"${target.topic}"}`
      : target.kind === 'device'
        ? `{"devices":["${target.device}"]}`
        : '{"broadcast":true}';
  return `{"to":${to},"data":${body},"ttl":600}`;
}

interface Balancer {
  port: number;
  pid: () => number;
  errorLog: string;
  stop(): Promise<void>;
}

/**
 * nginx `stream` in front of `ports`, rendered from Herald's own template (infra/nginx) with one
 * change: `reuseport` on the listen socket. Without it the kernel hands most accepts to one worker;
 * where a process may hold only ~20,000 descriptors (no CAP_SYS_RESOURCE), that worker runs out
 * ("socket() failed (24: Too many open files) while connecting to upstream") long before the others
 * fill up. worker_connections is set to what a worker can really hold.
 */
async function startBalancer(
  ports: readonly number[],
  o: StartOptions,
  name: string,
  workers: number,
): Promise<Balancer> {
  const bin = findExecutable('nginx', 'NGINX_BIN');
  if (!bin) throw new Error('nginx not found');
  const prefix = path.join(o.dir, name);
  fs.mkdirSync(prefix, { recursive: true });
  fs.mkdirSync(o.logDir, { recursive: true });
  const port = await freePort();
  const errorLog = path.join(o.logDir, `${name}-error.log`);
  const conf = path.join(prefix, 'nginx.conf');
  const text = renderNginxConf({
    upstreams: ports.map((p) => ({ host: '127.0.0.1', port: p })),
    listen: `127.0.0.1:${port}`,
    prefix,
    errorLog,
    accessLog: path.join(o.logDir, `${name}-access.log`),
    errorLogLevel: 'warn',
    maxConns: 1_000_000,
    workerProcesses: workers,
    workerConnections: socketsPerProcess(),
  });
  if (!text.includes(' reuseport;')) throw new Error(`${name}: the nginx template no longer sets reuseport`);
  fs.writeFileSync(conf, text);
  const proc = await ManagedProcess.start({
    command: bin,
    args: ['-p', prefix, '-c', conf, '-e', errorLog, '-g', 'daemon off;'],
    logFile: path.join(o.logDir, `${name}.log`),
    name,
  });
  try {
    await waitForTcp('127.0.0.1', port, 20_000, () =>
      proc.running ? undefined : `${name} exited:\n${proc.logTail()}\n${fs.readFileSync(errorLog, 'utf8')}`,
    );
  } catch (err) {
    await proc.stop('SIGKILL', 2000);
    throw err;
  }
  return { port, pid: () => proc.pid, errorLog, stop: async () => void (await proc.stop('SIGTERM', 10_000)) };
}

// ---------------------------------------------------------------- Herald

const CPU_PROF_PRELOAD = fileURLToPath(new URL('./cpu-prof-preload.js', import.meta.url));

export async function startHerald(
  variant: 'direct' | 'nginx',
  o: StartOptions,
  transport: 'ws' | 'sse' = 'ws',
): Promise<RunningSystem> {
  const per = socketsPerProcess();
  // Through the balancer the address hash can load one node more than others: leave slack.
  const nodes = Math.max(o.nodes, Math.ceil((o.peak * (variant === 'nginx' ? 1.5 : 1.1)) / per));
  // Every proxied session holds two descriptors in one nginx worker, and accepts are not spread
  // evenly over the workers (no reuseport in the stack's config): leave slack.
  const nginxWorkers = Math.max(2, Math.ceil((2 * o.peak * 1.6) / per));
  const shards = o.redisShards ?? 1;
  const cluster =
    shards > 1 ? await startRedisCluster({ masters: shards, dir: path.join(o.dir, 'cluster') }) : undefined;
  const stack: Stack = await startStack({
    ...(cluster ? { redisUrl: cluster.url } : {}),
    nodes,
    dataDir: path.join(o.dir, 'herald'),
    logDir: o.logDir,
    apiKeys: [API_KEY],
    tokenSecret: TOKEN_SECRET,
    logLevel: 'warn',
    env: {
      // Defaults guard a node against connect storms (2,000/s); the benchmark measures capacity.
      HERALD_ACCEPT_RATE: '1000000',
      HERALD_MAX_CONNECTIONS: '1000000',
      ...(o.cpuProf
        ? {
            NODE_OPTIONS: `--import=${CPU_PROF_PRELOAD}`,
            HERALD_BENCH_CPU_PROF_DIR: o.cpuProf,
            HERALD_DRAIN_MS: '0',
          }
        : {}),
    },
    // The stack's own nginx stays idle; the benchmark's balancer (same template + reuseport) is used.
    nginx: { maxConns: 1_000_000, workerProcesses: 1 },
    readyTimeoutMs: 30_000,
  });
  if (stack.redis && o.aof === false) {
    const admin = new Redis(stack.redis?.url ?? '', { maxRetriesPerRequest: 1 });
    await admin.config('SET', 'appendonly', 'no').finally(() => admin.quit());
  }
  let balancer: Balancer | undefined;
  if (variant === 'nginx') {
    try {
      balancer = await startBalancer(
        stack.nodes.map((n) => n.port),
        o,
        'herald-nginx',
        nginxWorkers,
      );
    } catch (err) {
      await stack.stop().catch(() => undefined);
      throw err;
    }
  }
  const groups: ProcGroup[] = [
    { name: 'nodes', counted: true, pids: () => stack.nodes.map((n) => n.pid) },
    { name: 'worker', counted: true, pids: () => [stack.worker.pid] },
    { name: 'api', counted: true, pids: () => [stack.api.pid] },
    {
      name: 'redis',
      counted: true,
      pids: () => (cluster ? cluster.servers.map((s) => s.pid) : stack.redis ? [stack.redis.pid] : []),
    },
  ];
  const b = balancer;
  if (b) groups.push(nginxGroup('nginx', b.pid, false));
  const url = `${stack.apiUrl}/v1/notifications`;
  const headers = { authorization: `Bearer ${API_KEY}` };
  const sse = transport === 'sse';
  const scheme = sse ? 'http' : 'ws';
  const route = sse ? '/v1/sse' : '/v1/ws';
  return {
    name: `${variant === 'direct' ? 'herald-direct' : 'herald-nginx'}${sse ? '-sse' : ''}` as SystemName,
    clientKind: sse ? 'herald-sse' : 'herald',
    urls: b
      ? [`${scheme}://127.0.0.1:${b.port}${route}`]
      : stack.nodes.map((n) => `${scheme}://127.0.0.1:${n.port}${route}`),
    groups,
    tokenSecret: TOKEN_SECRET,
    publish(pub, target, body) {
      return pub.post(url, heraldPublish(target, body), headers);
    },
    publishBatch(pub, items) {
      const list = items.map((it) => heraldPublish(it.target, it.body)).join(',');
      return pub.post(`${url}/batch`, `{"notifications":[${list}]}`, headers);
    },
    info: {
      nodes,
      redis: cluster ? `Redis Cluster, ${shards} masters + ${shards} replicas` : 'one redis-server',
      balancer: b
        ? `nginx stream, infra/nginx template + reuseport, ${nginxWorkers} workers, port ${b.port}`
        : 'none: clients spread over the node ports',
      env: 'HERALD_ACCEPT_RATE=1000000 HERALD_MAX_CONNECTIONS=1000000 HERALD_LOG_LEVEL=warn (others default)',
      aof: o.aof === false ? 'off (CONFIG SET appendonly no)' : 'on (appendfsync everysec)',
      transport: sse
        ? 'SSE: GET /v1/sse (Authorization: Bearer), acks POST /v1/acks'
        : 'WebSocket /v1/ws, ack frames',
      nodePorts: stack.nodes.map((n) => n.port),
      pids: { nodes: stack.nodes.map((n) => n.pid), worker: stack.worker.pid, api: stack.api.pid },
      apiPort: stack.api.port,
    },
    logs: b ? [b.errorLog] : [],
    ...(cluster ? {} : { redisUrl: stack.redisUrl }),
    stop: async () => {
      await b?.stop().catch(() => undefined);
      await stack.stop();
      await cluster?.stop();
    },
  };
}

// ---------------------------------------------------------------- Socket.IO

const SOCKETIO_SERVER = fileURLToPath(new URL('./peers/socketio-server.js', import.meta.url));

export async function startSocketIo(o: StartOptions): Promise<RunningSystem> {
  const per = socketsPerProcess();
  const count = Math.max(2, Math.ceil((o.peak * 1.1) / per));
  fs.mkdirSync(o.logDir, { recursive: true });
  const procs: ManagedProcess[] = [];
  const ports: number[] = [];
  let redis: RedisHandle | undefined;
  let nginx: Balancer | undefined;
  const stop = async () => {
    await nginx?.stop().catch(() => undefined);
    await Promise.all(procs.map((p) => p.stop('SIGTERM', 5000)));
    await redis?.stop().catch(() => undefined);
  };
  try {
    redis = await startRedis({
      dir: path.join(o.dir, 'socketio-redis'),
      logFile: path.join(o.logDir, 'socketio-redis.log'),
      appendonly: false,
    });
    await startPeerProcesses(o, SOCKETIO_SERVER, 'socketio', count, { REDIS_URL: redis.url }, procs, ports);
    if (o.balancer) {
      nginx = await startBalancer(
        ports,
        o,
        'socketio-nginx',
        Math.max(2, Math.ceil((2 * o.peak * 1.6) / per)),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const r = redis;
  const n = nginx;
  const groups: ProcGroup[] = [
    { name: 'socketio', counted: true, pids: () => procs.map((p) => p.pid) },
    { name: 'redis', counted: true, pids: () => [r.pid] },
  ];
  if (n) groups.push(nginxGroup('nginx', n.pid, false));
  let rr = 0;
  return {
    name: 'socketio',
    clientKind: 'socketio',
    urls: n ? [`ws://127.0.0.1:${n.port}`] : ports.map((p) => `ws://127.0.0.1:${p}`),
    groups,
    publish(pub, target, body) {
      // Publishers reach the processes round-robin, as behind an HTTP load balancer.
      const port = ports[rr++ % ports.length];
      const q =
        target.kind === 'topic'
          ? `?room=${encodeURIComponent(target.topic)}`
          : target.kind === 'device'
            ? `?room=${encodeURIComponent(target.device)}`
            : '';
      return pub.post(`http://127.0.0.1:${port}/emit${q}`, body);
    },
    info: {
      processes: procs.length,
      balancer: n ? `nginx stream on ${n.port}` : 'none (clients spread over the process ports)',
      ports,
      transports: 'websocket',
      adapter: '@socket.io/redis-adapter',
    },
    logs: n ? [n.errorLog] : [],
    stop,
  };
}

export async function startSystem(name: SystemName, o: StartOptions): Promise<RunningSystem> {
  switch (name) {
    case 'herald-direct':
      return startHerald('direct', o);
    case 'herald-nginx':
      return startHerald('nginx', o);
    case 'socketio':
      return startSocketIo(o);
    case 'nchan':
      return startNchan(o);
    case 'herald-direct-sse':
      return startHerald('direct', o, 'sse');
    case 'nchan-sse':
      return startNchan(o, 'sse');
    case 'ws-floor':
      return startWsFloor(o);
    case 'herald-floor':
      return startHeraldFloor(o);
    case 'herald-floor-durable':
      return startHeraldFloor(o, true);
  }
}

export { ok2xx };
