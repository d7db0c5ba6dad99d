/**
 * `node bench/dist/storm.js [clients] [runs]` (default 20000 clients, 1 run): the reconnect storm
 * of issue #14. One stack (3 push nodes behind the stack's nginx, one Redis, the default accept
 * rate), `clients` devices connected through nginx by the load generators (hello + welcome), then
 * the node holding about a third of them is SIGKILLed. Its devices reconnect through nginx as the
 * SDK does (the generators' reconnect mode: full jitter, 250 ms doubling to 30 s, a 4013 or failed
 * attempt backs off further). Every 250 ms: CPU of Redis and of each node (/proc), each survivor's
 * `herald_connections`, the generators' counts. Redis `INFO commandstats` from a `CONFIG RESETSTAT`
 * at the kill to the end. Prints a markdown table, writes bench/results/storm-<time>.json.
 *
 * Environment: STORM_WAIT_MS (bound on the storm, 120000), STORM_SOURCES (loopback source
 * addresses; nginx hashes on the client address, 64), STORM_CONCURRENCY (handshakes in flight
 * while connecting, 500), STORM_OUT_DIR (results and logs, bench/results), HERALD_ACCEPT_RATE
 * (passed to the nodes as usual; the limit of the verdict, 2000).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Stack, startStack } from '@herald/stack';
import { commandStats, perOperation } from './commandstats.js';
import { socketsPerProcess } from './limits.js';
import { LoadGenPool } from './loadgen/pool.js';
import type { ReconnectStats } from './loadgen/protocol.js';
import { sourceAddresses } from './options.js';
import { childPids, machineCpu, type ProcGroup, readProc, round, snapshot, usage } from './procstat.js';
import {
  cpuFigures,
  markdown,
  peakPerSecond,
  peakRate,
  type RunResult,
  type Sample,
  spread,
  verdicts,
} from './storm-stats.js';

const [clients = 20_000, runs = 1] = process.argv.slice(2).map(Number);
const SECRET = 'bench-token-secret-0123456789abcdef';
const WAIT_MS = Number(process.env.STORM_WAIT_MS ?? 120_000);
const SOURCES = Number(process.env.STORM_SOURCES ?? 64);
const CONCURRENCY = Number(process.env.STORM_CONCURRENCY ?? 500);
const OUT_DIR = path.resolve(
  process.env.STORM_OUT_DIR ?? fileURLToPath(new URL('../results', import.meta.url)),
);
/** The node's token bucket: rate and burst are both HERALD_ACCEPT_RATE (apps/node/src/node.ts). */
const ACCEPT_RATE = Number(process.env.HERALD_ACCEPT_RATE ?? 2000);
const LIMIT_PER_S = 2 * ACCEPT_RATE;
const REDIS_MAX_PCT = 50;
/** nginx `max_conns` per node: the node's own default cap (docs/operations.md: about HERALD_MAX_CONNECTIONS / balancers). */
const MAX_CONNS = 50_000;
const BACKOFF = { initialMs: 250, maxMs: 30_000 };
const SAMPLE_MS = 250;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

if (!(clients > 0 && runs > 0)) {
  console.error('usage: node bench/dist/storm.js [clients] [runs]');
  process.exit(2);
}
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const logRoot = path.join(OUT_DIR, `storm-logs-${stamp}`);
const generators = Math.max(2, Math.ceil((clients * 1.2) / socketsPerProcess()));
const nginxWorkers = Math.max(2, Math.ceil((2 * clients * 1.5) / socketsPerProcess()));

async function metrics(url: string): Promise<{ connections?: number; connects?: number }> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) });
  const text = await res.text();
  const read = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  return { connections: read('herald_connections'), connects: read('herald_connects_total') };
}

/** Machine-wide TCP counters (/proc/net/netstat TcpExt): accept-queue overflows and SYN retransmits. */
function tcpExt(): Record<string, number> {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[i]?.split(/\s+/) ?? [];
  const values = lines[i + 1]?.split(/\s+/) ?? [];
  const out: Record<string, number> = {};
  for (const k of ['ListenOverflows', 'ListenDrops', 'TCPSynRetrans', 'TCPTimeouts'])
    out[k] = Number(values[names.indexOf(k)] ?? 0);
  return out;
}

/** Warn and error/fatal lines (pino levels 40, 50, 60) of an app's log. */
function logLines(file: string): { warn: number; error: number; first: string[] } {
  const out = { warn: 0, error: 0, first: [] as string[] };
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const level = Number(/"level":(\d+)/.exec(line)?.[1] ?? 0);
    if (level < 40) continue;
    if (level >= 50) out.error++;
    else out.warn++;
    if (out.first.length < 5) out.first.push(line.slice(0, 300));
  }
  return out;
}

/** The 250 ms sampler: /proc now, /metrics and the generators' counts as they answer. */
function startSampler(stack: Stack, pool: LoadGenPool, survivors: () => string[]) {
  const samples: Sample[] = [];
  const connections: Record<string, number> = {};
  /** Per survivor: [time of the answer, herald_connects_total] (sessions the node admitted). */
  const connects: Record<string, Array<[number, number]>> = {};
  let latest: ReconnectStats | undefined;
  let poolBusy = false;
  const busy = new Set<string>();
  const take = () => {
    const cpuS: Record<string, number> = {};
    const redis = stack.redis ? readProc(stack.redis.pid) : undefined;
    if (redis) cpuS.redis = redis.cpuS;
    for (const node of stack.nodes) {
      const p = node.process.running ? readProc(node.pid) : undefined;
      if (p) cpuS[node.name] = p.cpuS;
    }
    samples.push({
      t: Date.now(),
      cpuS,
      connections: { ...connections },
      welcomes: latest?.welcomes ?? 0,
      waiting: latest?.waiting ?? 0,
    });
    for (const node of stack.nodes) {
      if (!survivors().includes(node.name) || busy.has(node.name)) continue;
      busy.add(node.name);
      void metrics(node.url)
        .then((m) => {
          if (m.connections !== undefined) connections[node.name] = m.connections;
          if (m.connects !== undefined) {
            const seen = connects[node.name] ?? [];
            connects[node.name] = seen;
            seen.push([Date.now(), m.connects]);
          }
        })
        .catch(() => undefined)
        .finally(() => busy.delete(node.name));
    }
    if (!poolBusy) {
      poolBusy = true;
      void pool
        .reconnects()
        .then((r) => {
          latest = r;
        })
        .catch(() => undefined)
        .finally(() => {
          poolBusy = false;
        });
    }
  };
  take();
  const timer = setInterval(take, SAMPLE_MS);
  return {
    samples,
    connects,
    take,
    latest: () => latest,
    stop: () => clearInterval(timer),
  };
}

async function run(runNo: number, pool: LoadGenPool): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-storm-'));
  const logDir = path.join(logRoot, `run-${runNo}`);
  const stack = await startStack({
    dataDir: path.join(dir, 'data'),
    logDir,
    apiKeys: ['bench-api-key-0123456789abcdef'],
    tokenSecret: SECRET,
    logLevel: 'warn',
    nodes: 3,
    nginx: { maxConns: MAX_CONNS, workerProcesses: nginxWorkers },
    readyTimeoutMs: 30_000,
  });
  current = stack;
  try {
    await pool.prepare(
      {
        kind: 'herald',
        urls: [stack.wsUrl],
        idPrefix: `storm${runNo}-`,
        sub: { mode: 'own' },
        sources: sourceAddresses(SOURCES),
        clientTimeoutMs: 10_000,
        phaseTimeoutMs: 300_000,
        tokenSecret: SECRET,
        ackEveryMs: 0,
        reconnect: BACKOFF,
      },
      clients,
      CONCURRENCY,
    );
    const connected = await pool.connect(300_000);
    // A few refusals (e.g. 4013 while the machine is busy) leave those devices out of the storm;
    // more than 1% makes the run meaningless.
    const connectErrors = `${connected.failed} of ${clients} failed: ${JSON.stringify(connected.errors)}`;
    if (connected.failed > clients / 100) throw new Error(`connect: ${connectErrors}`);
    if (connected.failed > 0) console.error(`run ${runNo}: connect: ${connectErrors}; going on without them`);
    const perNodeBefore = Object.fromEntries(
      Object.entries(connected.perNode).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })),
    );
    // The node closest to a third of the devices.
    const [victimName, victimDevices] = Object.entries(perNodeBefore).sort(
      (a, b) => Math.abs(a[1] - connected.ok / 3) - Math.abs(b[1] - connected.ok / 3),
    )[0]!;
    const victim = stack.nodes.find((n) => n.name === victimName)!;
    const survivorNames = stack.nodes.filter((n) => n !== victim).map((n) => n.name);
    console.error(
      `run ${runNo}: ${connected.ok} connected in ${(connected.wallMs / 1000).toFixed(1)} s ${JSON.stringify(perNodeBefore)}; killing ${victimName} (${victimDevices})`,
    );

    const groups: ProcGroup[] = [
      { name: 'redis', counted: true, pids: () => (stack.redis ? [stack.redis.pid] : []) },
      ...stack.nodes.map((n) => ({ name: n.name, counted: true, pids: () => [n.pid] })),
      { name: 'worker', counted: true, pids: () => [stack.worker.pid] },
      { name: 'api', counted: true, pids: () => [stack.api.pid] },
      { name: 'nginx', counted: false, pids: () => [stack.balancer.pid, ...childPids(stack.balancer.pid)] },
      { name: 'loadgen', counted: false, pids: () => pool.pids() },
    ];
    const sampler = startSampler(stack, pool, () => survivorNames);
    // Two quiet seconds: Redis's CPU and commands with everyone connected and idle.
    const quiet = commandStats(stack.redisUrl);
    await quiet.start();
    const quietFrom = Date.now();
    await sleep(2000);
    const quietStats = await quiet.stop();
    delete quietStats['config|resetstat'];
    const quietS = (Date.now() - quietFrom) / 1000;
    const cs = commandStats(stack.redisUrl);
    await cs.start();
    sampler.take();
    const killAt = Date.now();
    const before = snapshot(groups);
    const machineBefore = machineCpu();
    const tcpBefore = tcpExt();
    await victim.kill9();
    const deadline = killAt + WAIT_MS;
    for (;;) {
      const r = sampler.latest();
      if (r && r.drops >= victimDevices && r.waiting === 0 && r.lastWelcomeAt > killAt) break;
      if (Date.now() > deadline) break;
      await sleep(50);
    }
    sampler.take();
    const after = snapshot(groups);
    const machineAfter = machineCpu();
    const tcpAfter = tcpExt();
    sampler.stop();
    const stats = await pool.reconnects(true);
    const redisStats = await cs.stop();
    // Redis 7 names the harness's own RESETSTAT `config|resetstat`.
    delete redisStats['config|resetstat'];
    const allBack = stats.drops >= victimDevices && stats.waiting === 0 && stats.lastWelcomeAt > killAt;
    const end = allBack ? stats.lastWelcomeAt : Date.now();
    const samples = sampler.samples;
    const baseline = cpuFigures(samples, 'redis', killAt - 2000, killAt);
    const times = stats.welcomeTimes ?? {};
    const connectionsAfter: Record<string, number> = {};
    for (const name of survivorNames) {
      const node = stack.nodes.find((n) => n.name === name)!;
      connectionsAfter[name] =
        (await metrics(node.url).catch(() => ({ connections: undefined }))).connections ?? -1;
    }
    const logs: RunResult['logs'] = {};
    for (const app of [...stack.nodes, stack.api, stack.worker]) logs[app.name] = logLines(app.logFile);
    const partial: Omit<RunResult, 'verdicts'> = {
      run: runNo,
      clients,
      connectFailed: connected.failed,
      perNodeBefore,
      killed: { node: victimName, devices: victimDevices },
      survivors: survivorNames,
      drops: stats.drops,
      back: stats.drops - stats.waiting,
      missing: Math.max(0, victimDevices - (stats.drops - stats.waiting)),
      refused4013: stats.refused4013,
      failures: stats.failures,
      failureReasons: stats.failureReasons,
      reconnectMs: allBack ? stats.lastWelcomeAt - killAt : null,
      stormMs: end - killAt,
      dropMs: spread(stats.dropTimes ?? [], killAt),
      welcomeMs: spread(Object.values(times).flat(), killAt),
      machineBusyPct: round(
        (100 * (machineAfter.busy - machineBefore.busy)) /
          Math.max(1, machineAfter.total - machineBefore.total),
        1,
      ),
      loadavg: os.loadavg(),
      tcp: Object.fromEntries(Object.entries(tcpAfter).map(([k, v]) => [k, v - (tcpBefore[k] ?? 0)])),
      welcomesPerNode: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.length])),
      peakWelcomesPerS: Object.fromEntries(survivorNames.map((s) => [s, peakPerSecond(times[s] ?? [])])),
      peakAcceptsPerS: Object.fromEntries(
        survivorNames.map((s) => [s, peakRate(sampler.connects[s] ?? [], killAt, end)]),
      ),
      connectionsAfter,
      redisBaselinePct: baseline.meanPct,
      redisCpu: cpuFigures(samples, 'redis', killAt, end),
      survivorCpu: Object.fromEntries(survivorNames.map((s) => [s, cpuFigures(samples, s, killAt, end)])),
      cpuS: Object.fromEntries(Object.entries(usage(before, after).groups).map(([k, v]) => [k, v.cpuS])),
      redisPerReconnect: perOperation(redisStats, Math.max(1, stats.welcomes)),
      redisQuietPerS: perOperation(quietStats, quietS),
      logs,
      timeline: samples.map((s) => ({ ...s, t: s.t - killAt })),
    };
    return { ...partial, verdicts: verdicts(partial, LIMIT_PER_S, REDIS_MAX_PCT) };
  } finally {
    current = undefined;
    await pool.close().catch(() => undefined);
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let current: Stack | undefined;
let pool: LoadGenPool | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    void Promise.allSettled([current?.stop(), pool?.stop()]).finally(() => process.exit(130));
  });

fs.mkdirSync(OUT_DIR, { recursive: true });
const outFile = path.join(OUT_DIR, `storm-${stamp}.json`);
const results: RunResult[] = [];
const meta = {
  command: `node bench/dist/storm.js ${clients} ${runs}`,
  date: new Date().toISOString(),
  machine: {
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    node: process.version,
    loadavgBefore: os.loadavg(),
  },
  settings: {
    nodes: 3,
    balancer: `stack nginx (infra/nginx template), ${nginxWorkers} workers, max_conns ${MAX_CONNS}`,
    acceptRate: ACCEPT_RATE,
    limitPerS: LIMIT_PER_S,
    backoff: BACKOFF,
    sources: SOURCES,
    generators,
    concurrency: CONCURRENCY,
    waitMs: WAIT_MS,
  },
  logs: logRoot,
};
pool = await LoadGenPool.start(generators, path.join(logRoot, 'loadgen'));
let failed = false;
try {
  for (let r = 1; r <= runs; r++) {
    results.push(await run(r, pool));
    fs.writeFileSync(outFile, `${JSON.stringify({ meta, runs: results }, null, 2)}\n`);
  }
} catch (err) {
  failed = true;
  console.error(`storm: ${(err as Error).stack ?? err}`);
} finally {
  await pool.stop();
}
console.log(markdown(results, LIMIT_PER_S, REDIS_MAX_PCT));
console.log(
  `\nmachine: ${meta.machine.cpu}, ${meta.machine.cores} cores, node ${process.version}, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}; results ${outFile}`,
);
process.exit(failed ? 1 : 0);
