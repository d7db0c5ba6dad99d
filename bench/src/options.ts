import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLOORS, SYSTEMS, type SystemName } from './system-types.js';

export const SCENARIOS = ['idle', 'connect', 'broadcast', 'rate', 'single', 'batch', 'maxconn'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface Options {
  scale: number;
  systems: SystemName[];
  scenarios: ScenarioName[];
  /** Herald push nodes (more are started when a scenario's connections need them). */
  nodes: number;
  /** Herald's Redis: 1 is one redis-server; more is a Redis Cluster of that many masters (each with a replica). */
  redisShards: number;
  /** Load-generator processes (more when the connection count needs them). */
  generators: number;
  /** Loopback source addresses 127.0.0.2 ... */
  sources: number;
  /** Source addresses of the maxconn scenario: the balancer hashes on them, so few addresses load few nodes. */
  maxconnSources: number;
  /** Handshakes in flight at once, over all generators. */
  connectConcurrency: number;
  payloadBytes: number;
  broadcastMessages: number;
  /** Herald clients ack every this many ms (cumulative; WebSocket frame or POST /v1/acks); 0: no acks. */
  ackMs: number;
  /** A Herald client acks at most this often (ms), as the SDK's `ackIntervalMs`; 0: every `ackMs` tick. */
  ackIntervalMs: number;
  /** Publishes in flight in the broadcast and single-device scenarios. */
  publishWindow: number;
  /** Notifications per request in the batch scenario. */
  batchSize: number;
  /** Batch requests in flight in the batch scenario. */
  batchWindow: number;
  rateSeconds: number;
  /** Messages at the first rate for this long before the measured runs, not counted (0: none). */
  rateWarmupSeconds: number;
  rates: number[];
  /** Connections the maxconn scenario tries (before scaling). */
  maxconn: number;
  /** Bound on the maxconn connect phase, seconds. */
  maxconnSeconds: number;
  outDir: string;
  /** Exact path of the JSON results (default: <outDir>/bench-<time>.json). */
  jsonOut: string | undefined;
  quiet: boolean;
  /** Write V8 CPU profiles of the Herald processes here (inspector, see cpu-prof-preload.ts). */
  cpuProf: string | undefined;
  /** Herald's Redis with AOF (the default, `appendfsync everysec`) or without: the price of durability. */
  heraldAof: boolean;
  /** Pause between two runs (sockets in TIME_WAIT, freed memory), ms. */
  pauseMs: number;
  /** Idle scenario: interval of the memory samples that wait for RSS to settle (at most 20 of them), ms. */
  settleMs: number;
}

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));

export const USAGE = `Usage: node bench/dist/run.js [options]
  --scale <x>              multiply every size (connections, subscribers, messages of single) (1)
  --systems <a,b>          ${SYSTEMS.join(',')} (all but the floors;
                           the -sse ones, Server-Sent Events, run in idle and broadcast only;
                           ws-floor, a bare \`ws\` server answering hello, in connect only;
                           herald-floor, Herald's hops with bare parts, in single and batch only;
                           herald-floor-durable, the same with an append to a stream, AOF on)
  --scenarios <a,b>        ${SCENARIOS.join(',')} (all)
  --nodes <n>              Herald push nodes, at least (3)
  --redis-shards <n>       Herald on a Redis Cluster of n masters (+1 replica each); 1 = one redis-server (1)
  --generators <n>         load-generator processes, at least (4)
  --sources <n>            loopback source addresses 127.0.0.2.. (8)
  --maxconn-sources <n>    source addresses of the maxconn scenario (64)
  --connect-concurrency <n> handshakes in flight over all generators (1000)
  --payload-bytes <n>      notification body size (200)
  --broadcast-messages <n> messages of the broadcast scenario (200)
  --publish-window <n>     publishes in flight (broadcast, single) (32)
  --ack-ms <n>             Herald devices ack (cumulative) every n ms: WebSocket frame, SSE POST /v1/acks; 0 = never (100)
  --ack-interval-ms <n>    ...but a device acks at most once per n ms, as the SDK's ackIntervalMs; 0 = every tick (1000)
  --batch-size <n>         notifications per request in the batch scenario (100)
  --batch-window <n>       batch requests in flight (4)
  --rate-seconds <s>       length of each rate run (10)
  --rate-warmup <s>        messages at the first rate for s seconds before the measured runs, reported apart (3)
  --rates <a,b>            publish rates of the rate scenario, msg/s (10,50)
  --maxconn <n>            connections the maxconn scenario tries, before --scale (50000)
  --maxconn-seconds <s>    bound on its connect phase (150)
  --out <dir>              results directory (bench/results)
  --json-out <file>        write the JSON results exactly here
  --cpu-prof <dir>         V8 CPU profiles of the Herald processes into <dir> (inspector preload)
  --herald-aof <on|off>    Herald's Redis with AOF (everysec, the default) or without (on)
  --pause-ms <n>           pause between two runs (1500)
  --settle-ms <n>          idle: RSS sampled every n ms until 3 in a row agree, at most 20 samples (1000)
  --quiet                  no progress lines`;

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    scale: 1,
    // The floors (bare servers: a connect on Node, Herald's hops) only when asked for.
    systems: SYSTEMS.filter((s) => !FLOORS[s]),
    scenarios: [...SCENARIOS],
    nodes: 3,
    redisShards: 1,
    generators: 4,
    sources: 8,
    maxconnSources: 64,
    connectConcurrency: 1000,
    payloadBytes: 200,
    broadcastMessages: 200,
    ackMs: 100,
    ackIntervalMs: 1000,
    publishWindow: 32,
    batchSize: 100,
    batchWindow: 4,
    rateSeconds: 10,
    rateWarmupSeconds: 3,
    rates: [10, 50],
    maxconn: 50_000,
    maxconnSeconds: 150,
    outDir: path.join(BENCH_DIR, 'results'),
    jsonOut: undefined,
    quiet: false,
    cpuProf: undefined,
    heraldAof: true,
    pauseMs: 1500,
    settleMs: 1000,
  };
  const num = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min)
      throw new Error(`${name} needs a number >= ${min}`);
    return n;
  };
  const list = <T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T[] => {
    const items = (v ?? '').split(',').filter(Boolean);
    const bad = items.filter((i) => !allowed.includes(i as T));
    if (items.length === 0 || bad.length > 0)
      throw new Error(`${name}: unknown ${bad.join(', ') || '(empty)'}; allowed: ${allowed.join(', ')}`);
    return items as T[];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a];
    const val = () => inline ?? argv[++i];
    switch (flag) {
      case '--scale':
        o.scale = num(flag, val(), 0.0001);
        break;
      case '--systems':
        o.systems = list(flag, val(), SYSTEMS);
        break;
      case '--scenarios':
        o.scenarios = list(flag, val(), SCENARIOS);
        break;
      case '--nodes':
        o.nodes = num(flag, val(), 1);
        break;
      case '--redis-shards':
        o.redisShards = num(flag, val(), 1);
        break;
      case '--generators':
        o.generators = num(flag, val(), 1);
        break;
      case '--sources':
        o.sources = Math.min(250, num(flag, val(), 1));
        break;
      case '--maxconn-sources':
        o.maxconnSources = Math.min(250, num(flag, val(), 1));
        break;
      case '--connect-concurrency':
        o.connectConcurrency = num(flag, val(), 1);
        break;
      case '--payload-bytes':
        o.payloadBytes = num(flag, val(), 60);
        break;
      case '--broadcast-messages':
        o.broadcastMessages = num(flag, val(), 1);
        break;
      case '--ack-ms':
        o.ackMs = num(flag, val(), 0);
        break;
      case '--ack-interval-ms':
        o.ackIntervalMs = num(flag, val(), 0);
        break;
      case '--publish-window':
        o.publishWindow = num(flag, val(), 1);
        break;
      case '--batch-size':
        o.batchSize = num(flag, val(), 1);
        break;
      case '--batch-window':
        o.batchWindow = num(flag, val(), 1);
        break;
      case '--rate-seconds':
        o.rateSeconds = num(flag, val(), 1);
        break;
      case '--rate-warmup':
        o.rateWarmupSeconds = num(flag, val(), 0);
        break;
      case '--rates':
        o.rates = (val() ?? '').split(',').map((r) => num(flag, r, 0.1));
        break;
      case '--maxconn':
        o.maxconn = num(flag, val(), 1);
        break;
      case '--maxconn-seconds':
        o.maxconnSeconds = num(flag, val(), 5);
        break;
      case '--out':
        o.outDir = path.resolve(val() ?? '');
        break;
      case '--json-out':
        o.jsonOut = path.resolve(val() ?? '');
        break;
      case '--cpu-prof':
        o.cpuProf = path.resolve(val() ?? '');
        break;
      case '--herald-aof': {
        const v = val();
        if (v !== 'on' && v !== 'off') throw new Error('--herald-aof needs on or off');
        o.heraldAof = v === 'on';
        break;
      }
      case '--pause-ms':
        o.pauseMs = num(flag, val(), 0);
        break;
      case '--settle-ms':
        o.settleMs = num(flag, val(), 10);
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

/** The scaled sizes of every scenario. */
export function sizes(o: Options) {
  const s = (n: number, min = 10) => Math.max(min, Math.round(n * o.scale));
  return {
    idle: [s(10_000), s(20_000)] as const,
    connect: s(20_000),
    broadcastSubscribers: s(5000),
    broadcastMessages: o.broadcastMessages,
    rateSubscribers: s(2000),
    singleDevices: s(2000),
    singleMessages: s(30_000, 100),
    maxconn: s(o.maxconn),
  };
}

export function sourceAddresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `127.0.0.${i + 2}`);
}
