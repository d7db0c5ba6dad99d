import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findExecutable,
  freePort,
  ManagedProcess,
  type RedisHandle,
  renderNginxConf,
  renderTemplate,
  type Stack,
  startRedis,
  startRedisCluster,
  startStack,
  waitForTcp,
} from '@herald/stack';
import { Redis } from 'ioredis';
import { startHeraldFloor, startWsFloor } from './floors.js';
import { socketsPerProcess } from './limits.js';
import { startPeerProcesses } from './peer-processes.js';
import { childPids, type ProcGroup } from './procstat.js';
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

/** Master and worker PIDs of an nginx started in the foreground. */
function nginxGroup(name: string, masterPid: () => number, counted: boolean): ProcGroup {
  return {
    name,
    counted,
    pids: () => {
      const m = masterPid();
      return m > 0 ? [m, ...childPids(m)] : [];
    },
  };
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

// ---------------------------------------------------------------- Nchan

const NCHAN_TEMPLATE = fileURLToPath(new URL('../peers/nchan/nginx.conf.template', import.meta.url));

export const NCHAN_MISSING =
  'Nchan is not installed (libnginx-mod-nchan); run bench/setup.sh (apt-get install -y libnginx-mod-nchan)';

/** Path of the Nchan dynamic module, or undefined when it is not installed. */
export function nchanModule(): string | undefined {
  const bin = findExecutable('nginx', 'NGINX_BIN');
  if (!bin) return undefined;
  const res = spawnSync(bin, ['-V'], { encoding: 'utf8', timeout: 10_000 });
  const text = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  const modulesDir = /--modules-path=(\S+)/.exec(text)?.[1] ?? '/usr/lib/nginx/modules';
  return [
    process.env.NCHAN_MODULE,
    path.join(modulesDir, 'ngx_nchan_module.so'),
    '/usr/lib/nginx/modules/ngx_nchan_module.so',
    '/usr/share/nginx/modules/ngx_nchan_module.so',
  ]
    .filter((f): f is string => Boolean(f))
    .find((f) => fs.existsSync(f));
}

export async function startNchan(o: StartOptions, transport: 'ws' | 'sse' = 'ws'): Promise<RunningSystem> {
  const module = nchanModule();
  const bin = findExecutable('nginx', 'NGINX_BIN');
  if (!module || !bin) throw new Error(NCHAN_MISSING);
  const per = socketsPerProcess();
  const workers = Math.max(2, Math.ceil((o.peak * 1.2) / per));
  const prefix = path.join(o.dir, 'nchan');
  fs.mkdirSync(path.join(prefix, 'tmp'), { recursive: true });
  fs.mkdirSync(o.logDir, { recursive: true });
  // Workers drop to nobody when the master is root: let them reach the prefix.
  for (let d = prefix; d.startsWith(o.dir) && d.length > 1; d = path.dirname(d)) fs.chmodSync(d, 0o755);
  fs.chmodSync(o.dir, 0o755);
  const port = await freePort();
  const errorLog = path.join(o.logDir, 'nchan-error.log');
  const conf = path.join(prefix, 'nginx.conf');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  fs.writeFileSync(
    conf,
    renderTemplate(fs.readFileSync(NCHAN_TEMPLATE, 'utf8'), {
      NCHAN_MODULE: module,
      USER: isRoot ? 'user nobody nogroup;' : '',
      WORKERS: String(workers),
      RLIMIT_NOFILE: String(200_000),
      PREFIX: prefix,
      ERROR_LOG: errorLog,
      WORKER_CONNECTIONS: String(per),
      SHM_SIZE: '512m',
      LISTEN: `127.0.0.1:${port}`,
    }),
  );
  const check = spawnSync(bin, ['-t', '-p', prefix, '-c', conf, '-e', errorLog], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (check.status !== 0) throw new Error(`nchan config check failed:\n${check.stderr}`);
  const proc = await ManagedProcess.start({
    command: bin,
    args: ['-p', prefix, '-c', conf, '-e', errorLog, '-g', 'daemon off;'],
    logFile: path.join(o.logDir, 'nchan.log'),
    name: 'nchan',
  });
  try {
    await waitForTcp('127.0.0.1', port, 20_000, () =>
      proc.running ? undefined : `nginx (nchan) exited:\n${proc.logTail()}`,
    );
  } catch (err) {
    await proc.stop('SIGKILL', 2000);
    throw err;
  }
  const sse = transport === 'sse';
  return {
    name: sse ? 'nchan-sse' : 'nchan',
    clientKind: sse ? 'nchan-sse' : 'nchan',
    urls: [`${sse ? 'http' : 'ws'}://127.0.0.1:${port}`],
    groups: [nginxGroup('nginx', () => proc.pid, true)],
    publish(pub, target, body) {
      const channel =
        target.kind === 'topic' ? target.topic : target.kind === 'device' ? target.device : 'all';
      return pub.post(`http://127.0.0.1:${port}/pub/${channel}`, body);
    },
    info: {
      workers,
      module,
      port,
      store: 'memory',
      subscriber: sse ? 'eventsource (GET /sse/<channel>)' : 'websocket (/sub/<channel>)',
      conf: 'bench/peers/nchan/nginx.conf.template',
    },
    logs: [errorLog],
    stop: async () => {
      // SIGQUIT would wait for open WebSockets; SIGTERM is nginx's fast shutdown.
      await proc.stop('SIGTERM', 10_000);
    },
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
