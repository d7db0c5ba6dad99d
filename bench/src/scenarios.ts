// Over 400 lines: the scenarios share one context and its helpers (connect, publish and measure),
// and each scenario is a short function of them; splitting would export those helpers for no gain.
import fs from 'node:fs';
import { commandStats, perOperation } from './commandstats.js';
import type { LatencySummary } from './histogram.js';
import type { LoadGenPool, PoolConnectResult, PoolStats } from './loadgen/pool.js';
import type { Subscription } from './loadgen/protocol.js';
import { type Options, type ScenarioName, sizes, sourceAddresses } from './options.js';
import { makePayload, nowMs } from './payload.js';
import { machineCpu, type ProcGroup, round, type Snapshot, snapshot, type Usage, usage } from './procstat.js';
import { type HttpPublisher, runPaced, runWindowed } from './publisher.js';
import { ok2xx, type RunningSystem, type Target } from './systems.js';

export interface Ctx {
  sys: RunningSystem;
  pool: LoadGenPool;
  o: Options;
  pub: HttpPublisher;
  log: (msg: string) => void;
}

export type Result = Record<string, unknown>;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Server groups plus the load generators (not counted), for CPU and RSS accounting. */
function groupsOf(ctx: Ctx): ProcGroup[] {
  return [
    ...ctx.sys.groups,
    { name: 'loadgen', counted: false, pids: () => ctx.pool.pids() },
    { name: 'harness', counted: false, pids: () => [process.pid] },
  ];
}

/** CPU use between two points, with the machine's total busy time (other work on the box shows up). */
class Meter {
  private readonly a: Snapshot;
  private readonly m = machineCpu();
  constructor(private readonly groups: ProcGroup[]) {
    this.a = snapshot(groups);
  }
  stop(): Usage & { machineBusyCores: number } {
    const b = snapshot(this.groups);
    const m = machineCpu();
    const u = usage(this.a, b);
    const busy = (m.busy - this.m.busy) / Math.max(1, m.total - this.m.total);
    // share of all cores busy, times the core count: how many cores were busy on average
    return { ...u, machineBusyCores: round(busy * (this.cpus ?? 2), 2) };
  }
  private readonly cpus = (() => {
    try {
      return fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s*:/gm)?.length ?? 2;
    } catch {
      return 2;
    }
  })();
}

async function connectClients(
  ctx: Ctx,
  total: number,
  sub: Subscription,
  idPrefix: string,
  opts: { offset?: number; phaseTimeoutMs?: number; sources?: number } = {},
): Promise<PoolConnectResult> {
  const phaseTimeoutMs = opts.phaseTimeoutMs ?? 120_000;
  await ctx.pool.prepare(
    {
      kind: ctx.sys.clientKind,
      urls: ctx.sys.urls,
      idPrefix,
      sub,
      sources: sourceAddresses(opts.sources ?? ctx.o.sources),
      clientTimeoutMs: 20_000,
      phaseTimeoutMs,
      tokenSecret: ctx.sys.tokenSecret,
      ackEveryMs: ctx.o.ackMs,
      ackIntervalMs: ctx.o.ackIntervalMs,
    },
    total,
    ctx.o.connectConcurrency,
    opts.offset ?? 0,
  );
  const r = await ctx.pool.connect(phaseTimeoutMs);
  ctx.log(
    `  connected ${r.ok}/${total} in ${r.wallMs} ms${r.failed ? `, failed ${r.failed} ${JSON.stringify(r.errors)}` : ''}`,
  );
  return r;
}

/** Polls the generators until `expected` distinct deliveries arrived, or progress stalls, or `maxMs`. */
async function waitDeliveries(
  ctx: Ctx,
  expected: number,
  publishing: { done: boolean },
  { stallMs = 10_000, maxMs = 180_000 } = {},
): Promise<PoolStats> {
  const t0 = performance.now();
  let last = -1;
  let lastChange = performance.now();
  for (;;) {
    const st = await ctx.pool.stats();
    if (st.unique >= expected) return st;
    if (st.unique !== last) {
      last = st.unique;
      lastChange = performance.now();
    }
    const now = performance.now();
    if (publishing.done && now - lastChange > stallMs) return st;
    if (now - t0 > maxMs) return st;
    await sleep(50);
  }
}

function latency(st: PoolStats): LatencySummary {
  return st.hist.summary();
}

function connectSummary(r: PoolConnectResult) {
  return {
    ok: r.ok,
    failed: r.failed,
    errors: r.errors,
    wallMs: r.wallMs,
    perNode: Object.keys(r.perNode).length ? r.perNode : undefined,
  };
}

function cpuSummary(u: Usage & { machineBusyCores: number }) {
  return {
    wallS: round(u.wallS, 3),
    serverCpuS: u.serverCpuS,
    allCpuS: u.allCpuS,
    machineBusyCores: u.machineBusyCores,
    /** Cores busy with work outside this benchmark (other processes on the machine). */
    otherCores: u.wallS > 0 ? round(Math.max(0, u.machineBusyCores - u.allCpuS / u.wallS), 2) : null,
    groups: u.groups,
  };
}

/** CPU seconds of the counted groups plus the balancer (the "with balancer" figure). */
function withBalancer(u: Usage): number {
  return round(u.serverCpuS + (u.groups.nginx && !u.groups.nginx.counted ? u.groups.nginx.cpuS : 0), 3);
}

// ------------------------------------------------------------------ scenarios

/**
 * The server processes' memory once it stops moving: sampled every `everyMs` (`--settle-ms`, 1 s
 * by default) until three samples in a row are within 0.5% of each other (at most 20 samples). A read 3 s after the connects, as before,
 * caught V8 before its idle-time GC had run, so one sitting gave Herald's SSE 7.4 to 16 KiB per
 * connection (issue #15's notes); idle sockets allocate next to nothing, so the GC's memory
 * reducer runs within a few seconds of the connects. The figures still move with the machine's
 * load (whole V8 pages, malloc arenas): `idle-ab.ts` compares SSE with WebSocket side by side.
 */
async function settled(groups: ProcGroup[], everyMs: number): Promise<Snapshot> {
  const rss = (s: Snapshot) => s.groups.reduce((a, g) => a + (g.counted ? g.rssKb : 0), 0);
  let last = snapshot(groups);
  let steady = 0;
  for (let i = 0; i < 20 && steady < 3; i++) {
    await sleep(everyMs);
    const s = snapshot(groups);
    steady = Math.abs(rss(s) - rss(last)) <= rss(last) * 0.005 ? steady + 1 : 0;
    last = s;
  }
  return last;
}

/** Idle memory per connection: RSS growth of the server processes at N1 and N2 connections. */
async function idle(ctx: Ctx): Promise<Result> {
  const [n1, n2] = sizes(ctx.o).idle;
  const groups = groupsOf(ctx);
  await sleep(1500);
  const s0 = snapshot(groups);
  const r1 = await connectClients(ctx, n1, { mode: 'own' }, 'idle-');
  const s1 = await settled(groups, ctx.o.settleMs);
  const r2 = await connectClients(ctx, n2 - n1, { mode: 'own' }, 'idle-', { offset: n1 });
  const s2 = await settled(groups, ctx.o.settleMs);
  const at = (s: Snapshot, conns: number) => {
    const u = usage(s0, s);
    const per = (kb: number) => (conns > 0 ? round((kb * 1024) / conns / 1024, 2) : null);
    const groupsPer: Record<string, number | null> = {};
    for (const [name, g] of Object.entries(u.groups))
      if (name !== 'loadgen') groupsPer[name] = per(g.rssDeltaKb);
    return {
      connections: conns,
      serverRssKb: u.serverRssKb,
      serverRssDeltaKb: u.serverRssDeltaKb,
      /** KiB of server RSS per connection (counted groups). */
      kbPerConn: per(u.serverRssDeltaKb),
      /** Per group, KiB per connection. */
      kbPerConnByGroup: groupsPer,
    };
  };
  const ok1 = r1.ok;
  const ok2 = r1.ok + r2.ok;
  const open = (await ctx.pool.stats()).open;
  return {
    sizes: [n1, n2],
    first: connectSummary(r1),
    second: connectSummary(r2),
    openAtEnd: open,
    at1: at(s1, ok1),
    at2: at(s2, ok2),
  };
}

/** Time to connect N clients at once (handshake done: Herald welcome, Socket.IO `40`, Nchan open). */
async function connect(ctx: Ctx): Promise<Result> {
  const n = sizes(ctx.o).connect;
  await sleep(1000);
  const stats = ctx.sys.redisUrl ? commandStats(ctx.sys.redisUrl) : undefined;
  await stats?.start();
  const meter = new Meter(groupsOf(ctx));
  const r = await connectClients(ctx, n, { mode: 'own' }, 'conn-');
  const u = meter.stop();
  const redis = await stats?.stop();
  return {
    size: n,
    ...connectSummary(r),
    connectsPerS: r.wallMs > 0 ? Math.round((r.ok * 1000) / r.wallMs) : null,
    connectsPerServerCpuS: u.serverCpuS > 0 ? Math.round(r.ok / u.serverCpuS) : null,
    /** Server CPU per connect by process group, in µs (issue #14). */
    usPerConnect: r.ok > 0 ? perConnect(u, r.ok) : null,
    cpu: cpuSummary(u),
    ...(redis && r.ok > 0 ? { redisPerConnect: perOperation(redis, r.ok) } : {}),
  };
}

/** Microseconds of CPU per connect: the server total and each group (load generators included, not counted). */
function perConnect(u: Usage, ok: number): Record<string, number> {
  const out: Record<string, number> = { server: Math.round((u.serverCpuS * 1e6) / ok) };
  for (const [name, g] of Object.entries(u.groups)) out[name] = Math.round((g.cpuS * 1e6) / ok);
  return out;
}

/** Publishes `count` messages to `target` (windowed or paced) and waits for every delivery. */
async function publishAndMeasure(
  ctx: Ctx,
  opts: {
    count: number;
    perClient: number;
    expected: number;
    target: (i: number) => Target;
    index: (i: number) => number;
    mode: { window: number } | { rate: number };
    /** Send `size` notifications per request (systems with a batch API), `window` requests in flight. */
    batch?: { size: number; window: number };
  },
) {
  const { pub, sys } = ctx;
  await ctx.pool.expect(opts.perClient);
  const redis = sys.redisUrl ? commandStats(sys.redisUrl) : undefined;
  await redis?.start();
  const meter = new Meter(groupsOf(ctx));
  const statuses: Record<number, number> = {};
  let accepted = 0;
  const publishing = { done: false };
  const t0 = nowMs();
  const job = async (i: number) => {
    const s = await sys.publish(pub, opts.target(i), makePayload(opts.index(i), ctx.o.payloadBytes));
    statuses[s] = (statuses[s] ?? 0) + 1;
    if (ok2xx(s)) accepted++;
  };
  let publishEnd = 0;
  let lateMs: number | undefined;
  const { batch } = opts;
  const batchJob = async (b: number) => {
    const items = [];
    for (let i = b * (batch?.size ?? 1); i < Math.min(opts.count, (b + 1) * (batch?.size ?? 1)); i++)
      items.push({ target: opts.target(i), body: makePayload(opts.index(i), ctx.o.payloadBytes) });
    const s = await (sys.publishBatch as NonNullable<typeof sys.publishBatch>)(pub, items);
    statuses[s] = (statuses[s] ?? 0) + 1;
    // 202: every item accepted (a 207 would say which; counted as none here, so any miss shows).
    if (s === 202) accepted += items.length;
  };
  const publishRun = (async () => {
    if (batch) {
      await runWindowed(Math.ceil(opts.count / batch.size), batch.window, batchJob);
    } else if ('window' in opts.mode) {
      await runWindowed(opts.count, opts.mode.window, job);
    } else {
      lateMs = (await runPaced(opts.count, opts.mode.rate, job)).lateMs;
    }
    publishEnd = nowMs();
    publishing.done = true;
  })();
  const st = await waitDeliveries(ctx, opts.expected, publishing);
  await publishRun;
  const u = meter.stop();
  const commands = await redis?.stop();
  const windowS = st.lastAt > 0 ? (st.lastAt - t0) / 1000 : Number.NaN;
  return {
    published: opts.count,
    accepted,
    statuses,
    publishS: round((publishEnd - t0) / 1000, 3),
    acceptedPerS: publishEnd > t0 ? Math.round((accepted * 1000) / (publishEnd - t0)) : null,
    publisherLateMs: lateMs,
    expected: opts.expected,
    /** Publishes the server did not accept (HTTP error or timeout): not counted as lost. */
    publishFailed: opts.count - accepted,
    /** The publisher's last network error, when a publish got no HTTP answer. */
    publishError: statuses[0] ? pub.lastError : undefined,
    delivered: st.unique,
    /** Deliveries missing for accepted publishes (every publish reaches expected / count clients). */
    lost: Math.round((opts.expected * accepted) / opts.count) - st.unique,
    duplicates: st.duplicates,
    unexpected: st.unexpected,
    dropped: st.dropped,
    dropReasons: st.dropReasons,
    firstToLastS: round(windowS, 3),
    deliveriesPerS: Number.isFinite(windowS) && windowS > 0 ? Math.round(st.unique / windowS) : null,
    deliveriesPerServerCpuS: u.serverCpuS > 0 ? Math.round(st.unique / u.serverCpuS) : null,
    deliveriesPerCpuSWithBalancer:
      sys.groups.some((g) => g.name === 'nginx' && !g.counted) && withBalancer(u) > 0
        ? Math.round(st.unique / withBalancer(u))
        : undefined,
    latencyMs: latency(st),
    /** Herald acks sent during the run: WebSocket frames, or POST /v1/acks (of which answered 204). */
    acks: st.acks,
    acksAnswered: st.acksAnswered || undefined,
    ackErrors: Object.keys(st.ackErrors).length ? st.ackErrors : undefined,
    loadgenCpuS: round(st.cpuS, 2),
    cpu: cpuSummary(u),
    /** Server CPU per delivery by process group (api, nodes, redis, worker...), microseconds. */
    usPerDelivery: st.unique > 0 ? perDelivery(u, st.unique) : undefined,
    /** Redis commands of the phase per delivery (calls and µs each), from INFO commandstats. */
    redisPerDelivery: commands && st.unique > 0 ? perOperation(commands, st.unique) : undefined,
  };
}

function perDelivery(u: Usage, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, g] of Object.entries(u.groups)) out[name] = round((g.cpuS * 1e6) / n, 1);
  return out;
}

/** One topic, N subscribers, M messages of `payloadBytes` as fast as the publisher's window allows. */
async function broadcast(ctx: Ctx): Promise<Result> {
  const sz = sizes(ctx.o);
  const topic = 'bench.broadcast';
  const r = await connectClients(ctx, sz.broadcastSubscribers, { mode: 'topic', topic }, 'bc-');
  await sleep(1000);
  const m = sz.broadcastMessages;
  const res = await publishAndMeasure(ctx, {
    count: m,
    perClient: m,
    expected: r.ok * m,
    target: () => ({ kind: 'topic', topic }),
    index: (i) => i,
    mode: { window: ctx.o.publishWindow },
  });
  return { subscribers: sz.broadcastSubscribers, messages: m, connect: connectSummary(r), ...res };
}

/** N subscribers of one topic, messages at a fixed rate: publish-to-receipt latency. */
async function rate(ctx: Ctx): Promise<Result> {
  const sz = sizes(ctx.o);
  const topic = 'bench.rate';
  const r = await connectClients(ctx, sz.rateSubscribers, { mode: 'topic', topic }, 'rt-');
  await sleep(1000);
  // The first seconds after the connects are not the steady state the scenario is about: for
  // Herald they held the run's worst deliveries (2,000 subscribers, 10 msg/s: p99 255-305 ms in
  // a first 10 s run, 62 ms in a second one right after it; BENCHMARKS.md). Every system gets the
  // same warm-up, and its figures are kept apart in the JSON (`warmup`).
  const atRate = async (perS: number, seconds: number, what: string) => {
    const count = Math.max(1, Math.round(perS * seconds));
    ctx.log(`  ${what}${perS} msg/s for ${seconds} s`);
    const res = await publishAndMeasure(ctx, {
      count,
      perClient: count,
      expected: r.ok * count,
      target: () => ({ kind: 'topic', topic }),
      index: (i) => i,
      mode: { rate: perS },
    });
    await sleep(500);
    return res;
  };
  const [first] = ctx.o.rates;
  const warmup =
    ctx.o.rateWarmupSeconds > 0 && first !== undefined
      ? await atRate(first, ctx.o.rateWarmupSeconds, 'warm-up: ')
      : undefined;
  const runs: Record<string, unknown> = {};
  for (const perS of ctx.o.rates) runs[`${perS}`] = await atRate(perS, ctx.o.rateSeconds, '');
  return {
    subscribers: sz.rateSubscribers,
    seconds: ctx.o.rateSeconds,
    connect: connectSummary(r),
    warmupSeconds: ctx.o.rateWarmupSeconds,
    warmup,
    runs,
  };
}

/** Many devices, each publish addressed to one device: end-to-end notifications per second. */
function single(ctx: Ctx): Promise<Result> {
  return singleDevice(ctx, 'sd-');
}

/** The single-device load again, sent as batches (POST /v1/notifications/batch): systems without a batch API are skipped. */
async function batch(ctx: Ctx): Promise<Result> {
  if (!ctx.sys.publishBatch) return { skipped: 'n/a: no batch publish API' };
  const res = await singleDevice(ctx, 'bd-', { size: ctx.o.batchSize, window: ctx.o.batchWindow });
  return { batchSize: ctx.o.batchSize, batchWindow: ctx.o.batchWindow, ...res };
}

async function singleDevice(
  ctx: Ctx,
  prefix: string,
  batch?: { size: number; window: number },
): Promise<Result> {
  const sz = sizes(ctx.o);
  const devices = sz.singleDevices;
  const r = await connectClients(ctx, devices, { mode: 'own' }, prefix);
  await sleep(1000);
  const count = sz.singleMessages;
  const res = await publishAndMeasure(ctx, {
    count,
    perClient: Math.ceil(count / devices),
    expected: r.ok === devices ? count : Math.round((count * r.ok) / devices),
    target: (i) => ({ kind: 'device', device: `${prefix}${i % devices}` }),
    index: (i) => Math.floor(i / devices),
    mode: { window: batch?.window ?? ctx.o.publishWindow },
    batch,
  });
  return { devices, messages: count, connect: connectSummary(r), ...res };
}

/** Error-log lines that explain why connections stopped (descriptor limits, worker_connections...). */
function logReasons(files: readonly string[]): Record<string, number> {
  const patterns: [string, RegExp][] = [
    ['Too many open files', /Too many open files/],
    ['worker_connections are not enough', /worker_connections are not enough/],
    ['no live upstreams', /no live upstreams/],
    ['upstream connect failed', /connect\(\) failed/],
    ['setrlimit failed', /setrlimit\(RLIMIT_NOFILE/],
    ['Cannot assign requested address', /Cannot assign requested address/],
  ];
  const out: Record<string, number> = {};
  for (const f of files) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n'))
      for (const [name, re] of patterns) if (re.test(line)) out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

/** As many connections as this machine holds through the balancer, then one broadcast to all. */
async function maxconn(ctx: Ctx): Promise<Result> {
  const target = sizes(ctx.o).maxconn;
  const groups = groupsOf(ctx);
  const s0 = snapshot(groups);
  const r = await connectClients(ctx, target, { mode: 'broadcast' }, 'mc-', {
    phaseTimeoutMs: ctx.o.maxconnSeconds * 1000,
    sources: ctx.o.maxconnSources,
  });
  await sleep(3000);
  const before = await ctx.pool.stats();
  const s1 = snapshot(groups);
  const mem = usage(s0, s1);
  ctx.log(`  ${before.open} open; broadcasting`);
  const res = await publishAndMeasure(ctx, {
    count: 1,
    perClient: 1,
    expected: before.open,
    target: () => ({ kind: 'broadcast' }),
    index: () => 0,
    mode: { window: 1 },
  });
  return {
    target,
    connect: connectSummary(r),
    openBeforeBroadcast: before.open,
    droppedWhileIdle: r.ok - before.open,
    reached: res.delivered,
    serverRssKb: mem.serverRssKb,
    rssByGroupKb: Object.fromEntries(Object.entries(mem.groups).map(([k, g]) => [k, g.rssKb])),
    logReasons: logReasons(ctx.sys.logs),
    broadcast: res,
  };
}

export const RUNNERS: Record<ScenarioName, (ctx: Ctx) => Promise<Result>> = {
  idle,
  connect,
  broadcast,
  rate,
  single,
  batch,
  maxconn,
};

/** Most connections a scenario opens at once (sizes the servers and generators). */
export function peakOf(name: ScenarioName, o: Options): number {
  const sz = sizes(o);
  switch (name) {
    case 'idle':
      return sz.idle[1];
    case 'connect':
      return sz.connect;
    case 'broadcast':
      return sz.broadcastSubscribers;
    case 'rate':
      return sz.rateSubscribers;
    case 'single':
    case 'batch':
      return sz.singleDevices;
    case 'maxconn':
      return sz.maxconn;
  }
}
