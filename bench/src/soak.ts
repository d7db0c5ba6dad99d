/**
 * Soak: a moderate, steady load on a local stack for a long time, watching every process for
 * growth. Not in the default suite (it runs for minutes); its last result is in BENCHMARKS.md.
 *
 *   node bench/dist/soak.js [--minutes 30] [--devices 200] [--rate 50] [--churn 5] [--nodes 2]
 *
 * Load: `devices` WebSocket devices through the balancer, half of them subscribed to one topic,
 * each acking every notification as it arrives; `churn` of them per second are dropped (TCP
 * reset, no close frame) and reconnected, resuming from their cursors; `rate` publishes per
 * second (at most 32 in flight; a tick with no room is counted as `behind`, never queued): 70%
 * to one device (the API's direct path), 20% to the topic, 10% to a user (queue and worker).
 *
 * Every 10 s: RSS of each process (/proc, procstat.ts) and, for the Herald processes, event-loop
 * lag p99 from their /metrics (prom-client's `nodejs_eventloop_lag_p99_seconds`, reset at each
 * scrape, so each sample is the last 10 s). At the end, per process, the least-squares slope of
 * RSS (MB per minute; of its peaks, see `ceiling`, and raw) and of lag p99 (ms per minute) after
 * a warm-up (the first fifth of the run, at least one minute: heaps and JIT settle first).
 * Redis is reported, not judged: its memory is data, bounded by MAXLEN and TTLs (set small here).
 *
 * Fails (exit 1) when a slope of a Herald process is above what this accepts:
 * - RSS peaks: 0.5 MB/min. The load does about 3,000 publishes and 300 reconnects a minute, so this
 *   catches any leak of about 150 bytes or more per operation (a retained notification, socket
 *   or timer is far more), while V8's and malloc's own settling stays well under it after the
 *   warm-up (the 30-minute run in BENCHMARKS.md: peak slopes 0.01-0.21 MB/min).
 * - event-loop lag p99: 1 ms/min. A loop that slows down as it runs (a list scanned on every
 *   message growing) shows here before memory does; lag on a busy 2-core machine is noisy in
 *   absolute terms, but its trend is not.
 * Also fails when a process exits, or when fewer than 95% of publishes are answered 202.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseMetrics, startStack } from '@herald/stack';
import { mintDeviceToken } from '@herald/token';
import WebSocket from 'ws';
import { readProc } from './procstat.js';
import { HttpPublisher } from './publisher.js';
import { API_KEY, TOKEN_SECRET } from './systems.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    devices: { type: 'string', default: '200' },
    rate: { type: 'string', default: '50' },
    churn: { type: 'string', default: '5' },
    nodes: { type: 'string', default: '2' },
    'sample-s': { type: 'string', default: '10' },
    'max-rss-slope': { type: 'string', default: '0.5' },
    'max-lag-slope': { type: 'string', default: '1' },
  },
});
function num(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number ${min}..${max}`);
  return n;
}
const minutes = num('minutes', values.minutes, 0.5, 24 * 60);
const deviceCount = Math.round(num('devices', values.devices, 2, 20_000));
const rate = num('rate', values.rate, 1, 5000);
const churn = num('churn', values.churn, 0, 1000);
const nodeCount = Math.round(num('nodes', values.nodes, 1, 16));
const sampleS = num('sample-s', values['sample-s'], 1, 600);
const maxRssSlope = num('max-rss-slope', values['max-rss-slope'], 0, 1000);
const maxLagSlope = num('max-lag-slope', values['max-lag-slope'], 0, 1000);
const TOPIC = 'soak.news';
const MAX_IN_FLIGHT = 32;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-soak-'));
const stack = await startStack({
  nodes: nodeCount,
  dataDir: path.join(dir, 'herald'),
  logDir: path.join(dir, 'logs'),
  apiKeys: [API_KEY],
  tokenSecret: TOKEN_SECRET,
  logLevel: 'warn',
  // Redis' data has its own bounds; small ones, so it reaches them within the warm-up of a
  // 30-minute run (an inbox gets ~0.2 entries/s at the defaults) and its memory can level off.
  env: {
    HERALD_INBOX_MAXLEN: '100',
    HERALD_TOPIC_MAXLEN: '1000',
    HERALD_STATUS_KEEP_S: '60',
  },
});

// Every process the stack started runs in a process group of its own (ManagedProcess spawns
// detached children), led by the PID we hold. nginx's workers are in its master's group: when the
// master dies from SIGKILL (a stop past its deadline, or the exit hook that SIGKILLs every managed
// child), they are reparented and keep running. A run on 2026-12-01 left such orphan workers. So
// the soak also SIGKILLs each group it started, by the leader's PID, after the stack's own stop and
// on any exit or signal, and then reports whatever of those groups is still there.
const groups = new Set<number>([
  stack.api.pid,
  stack.worker.pid,
  ...stack.nodes.map((n) => n.pid),
  stack.balancer.pid,
  ...(stack.redis ? [stack.redis.pid] : []),
]);
function killGroups(): void {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // group already empty
    }
  }
}
/** PIDs still alive in the groups this soak started (read from /proc: pgrp is field 5 of stat). */
function groupLeftovers(): number[] {
  const left: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z' && groups.has(Number(fields[2]))) left.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return left;
}
process.on('exit', killGroups);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(sig, () => {
    killGroups();
    process.exit(1);
  });

// ------------------------------------------------------------------ devices

interface Device {
  id: string;
  token: string;
  topic: boolean;
  ws?: WebSocket;
  live: boolean;
}
const counts = { received: 0, acked: 0, connects: 0, drops: 0, connectErrors: 0, behind: 0 };
const devices: Device[] = [];
for (let i = 0; i < deviceCount; i++) {
  const id = `soak-${i}`;
  // User u-<i/2>: two devices per user, so a user publish fans out to two inboxes.
  const token = await mintDeviceToken({
    secret: TOKEN_SECRET,
    device: id,
    user: `u-${i >> 1}`,
    expiresIn: '48h',
  });
  devices.push({ id, token, topic: i % 2 === 0, live: false });
}

function connect(d: Device): void {
  const ws = new WebSocket(stack.wsUrl);
  d.ws = ws;
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token: d.token })));
  ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('{"type":"notification"')) {
      counts.received++;
      const f = JSON.parse(text) as { stream: string; seq: number };
      ws.send(JSON.stringify({ type: 'ack', stream: f.stream, seq: f.seq }));
      counts.acked++;
      return;
    }
    const f = JSON.parse(text) as { type: string };
    if (f.type === 'welcome') {
      d.live = true;
      counts.connects++;
      if (d.topic) ws.send(JSON.stringify({ type: 'subscribe', topic: TOPIC }));
    }
  });
  ws.on('error', () => counts.connectErrors++);
  ws.on('close', () => {
    d.live = false;
    if (d.ws === ws) d.ws = undefined;
  });
}

/** Drops one device without a close frame and connects it again (it resumes from its cursors). */
function churnOne(): void {
  const d = devices[Math.floor(Math.random() * devices.length)]!;
  if (d.ws) {
    counts.drops++;
    d.ws.terminate();
  }
  connect(d);
}

// ------------------------------------------------------------------ publishes

const pub = new HttpPublisher(MAX_IN_FLIGHT);
const url = `${stack.apiUrl}/v1/notifications`;
const headers = { authorization: `Bearer ${API_KEY}` };
let inFlight = 0;
let published = 0;
function publishOne(): void {
  if (inFlight >= MAX_IN_FLIGHT) {
    counts.behind++;
    return;
  }
  const r = Math.random();
  const i = Math.floor(Math.random() * deviceCount);
  const to = r < 0.7 ? { devices: [`soak-${i}`] } : r < 0.9 ? { topic: TOPIC } : { users: [`u-${i >> 1}`] };
  inFlight++;
  published++;
  void pub
    .post(url, JSON.stringify({ to, data: { n: published } }), headers, 10_000)
    .finally(() => inFlight--);
}

// ------------------------------------------------------------------ sampling

interface Proc {
  name: string;
  pid: () => number;
  metricsUrl?: string;
}
const procs: Proc[] = [
  { name: 'api', pid: () => stack.api.pid, metricsUrl: `${stack.api.url}/metrics` },
  { name: 'worker', pid: () => stack.worker.pid, metricsUrl: `${stack.worker.url}/metrics` },
  ...stack.nodes.map((n) => ({ name: n.name, pid: () => n.pid, metricsUrl: `${n.url}/metrics` })),
  ...(stack.redis ? [{ name: 'redis', pid: () => stack.redis!.pid }] : []),
];
const firstPids = new Map(procs.map((p) => [p.name, p.pid()]));
interface Sample {
  tMin: number;
  rssMb: number;
  lagMs?: number;
}
const samples = new Map<string, Sample[]>(procs.map((p) => [p.name, []]));

async function lagOf(metricsUrl: string): Promise<number | undefined> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
    const m = parseMetrics(await res.text()).find((s) => s.name === 'nodejs_eventloop_lag_p99_seconds');
    return m ? m.value * 1000 : undefined;
  } catch {
    return undefined;
  }
}

const t0 = performance.now();
async function sample(): Promise<void> {
  const tMin = (performance.now() - t0) / 60_000;
  await Promise.all(
    procs.map(async (p) => {
      const s = readProc(p.pid());
      if (!s) return;
      const lagMs = p.metricsUrl ? await lagOf(p.metricsUrl) : undefined;
      samples.get(p.name)!.push({ tMin, rssMb: s.rssKb / 1024, lagMs });
    }),
  );
  const line = procs
    .map((p) => {
      const last = samples.get(p.name)!.at(-1);
      return last
        ? `${p.name} ${last.rssMb.toFixed(0)}MB${last.lagMs !== undefined ? `/${last.lagMs.toFixed(1)}ms` : ''}`
        : `${p.name} -`;
    })
    .join('  ');
  console.log(
    `[soak] ${tMin.toFixed(1)} min  published ${published} ${JSON.stringify(pub.statuses)}  received ${counts.received}  live ${devices.filter((d) => d.live).length}/${deviceCount}  ${line}`,
  );
}

/**
 * The upper envelope: each sample replaced by the greatest of it and the samples of the
 * `windowMin` minutes before it (a sixth of the run, at least one minute). A heap saws between
 * collections; a leak raises its peaks, while collections only cut samples short, which this
 * ignores. Measured on the 30-minute run (BENCHMARKS.md): the worker's major collections every
 * ~5.5 min dropped it from ~117 to ~83 MB and back; a floor (rolling minimum) then read as
 * 1.55 MB/min growth where the peaks stayed at 116-118 MB (0.03 MB/min).
 */
function ceiling(s: Sample[], windowMin: number): number[] {
  return s.map((x, i) => {
    let m = x.rssMb;
    for (let j = i - 1; j >= 0 && s[j]!.tMin >= x.tMin - windowMin; j--) m = Math.max(m, s[j]!.rssMb);
    return m;
  });
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 3) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

// ------------------------------------------------------------------ run

let failed: string[] = [];
try {
  for (const d of devices) connect(d);
  const publishEvery = 1000 / rate;
  const timers = [
    setInterval(publishOne, publishEvery),
    ...(churn > 0 ? [setInterval(churnOne, 1000 / churn)] : []),
  ];
  const endAt = t0 + minutes * 60_000;
  await sample();
  while (performance.now() < endAt) {
    await new Promise((r) => setTimeout(r, Math.min(sampleS * 1000, endAt - performance.now())));
    await sample();
    for (const p of procs)
      if (p.pid() !== firstPids.get(p.name) || !readProc(p.pid()))
        failed.push(`${p.name} exited or restarted`);
    if (failed.length > 0) break;
  }
  for (const t of timers) clearInterval(t);

  const warmMin = Math.max(1, minutes / 5);
  const windowMin = Math.max(1, minutes / 6);
  console.log(
    `\nsoak: ${minutes} min, ${deviceCount} devices, ${rate} publishes/s, ${churn} reconnects/s, ${nodeCount} nodes, samples every ${sampleS} s; slopes after ${warmMin.toFixed(1)} min of warm-up`,
  );
  console.log(
    `published ${published} (${JSON.stringify(pub.statuses)}, ${counts.behind} ticks behind), received ${counts.received}, acked ${counts.acked}, connects ${counts.connects}, drops ${counts.drops}, socket errors ${counts.connectErrors}\n`,
  );
  console.log(
    `| process | RSS start -> end MB | RSS peak slope MB/min (judged; ${windowMin.toFixed(1)}-min ceiling) | RSS raw slope MB/min | lag p99 median ms | lag p99 slope ms/min |`,
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const p of procs) {
    const all = samples.get(p.name)!;
    const s = all.filter((x) => x.tMin >= warmMin);
    const rawSlope = slope(
      s.map((x) => x.tMin),
      s.map((x) => x.rssMb),
    );
    const rssSlope = slope(
      s.map((x) => x.tMin),
      ceiling(s, windowMin),
    );
    const lags = s.filter((x) => x.lagMs !== undefined);
    const lagSlope = slope(
      lags.map((x) => x.tMin),
      lags.map((x) => x.lagMs!),
    );
    const sorted = lags.map((x) => x.lagMs!).sort((a, b) => a - b);
    const lagMedian = sorted.length ? sorted[Math.floor(sorted.length / 2)]!.toFixed(1) : '-';
    console.log(
      `| ${p.name} | ${all[0]?.rssMb.toFixed(1)} -> ${all.at(-1)?.rssMb.toFixed(1)} | ${rssSlope.toFixed(3)} | ${rawSlope.toFixed(3)} | ${lagMedian} | ${Number.isNaN(lagSlope) ? '-' : lagSlope.toFixed(3)} |`,
    );
    // Redis' memory is data with bounds of its own (MAXLEN, TTLs): reported, not judged.
    if (p.name !== 'redis' && !(rssSlope <= maxRssSlope))
      failed.push(`${p.name}: RSS slope ${rssSlope.toFixed(3)} MB/min > ${maxRssSlope}`);
    if (lags.length >= 3 && !(lagSlope <= maxLagSlope))
      failed.push(`${p.name}: lag p99 slope ${lagSlope.toFixed(3)} ms/min > ${maxLagSlope}`);
  }
  const ok = pub.statuses[202] ?? 0;
  if (ok < 0.95 * published) failed.push(`only ${ok} of ${published} publishes answered 202`);
} finally {
  for (const d of devices) d.ws?.terminate();
  await stack.stop().catch((err: Error) => failed.push(`stack stop: ${err.message}`));
  const left = groupLeftovers();
  if (left.length > 0) {
    failed.push(`processes left after the stack's stop, SIGKILLed by group: ${left.join(', ')}`);
    killGroups();
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
if (failed.length > 0) {
  failed = [...new Set(failed)];
  console.log(`\nFAIL\n${failed.join('\n')}`);
  process.exit(1);
}
console.log('\nPASS: no slope above the limits');
