/**
 * Figures of the reconnect-storm benchmark (storm.ts) from its 250 ms samples and the clients'
 * welcome times: CPU % over 1 s windows, welcomes per survivor in any 1 s window, the verdicts,
 * and the markdown it prints.
 */
import { round } from './procstat.js';

export interface Sample {
  /** Wall-clock ms. */
  t: number;
  /** utime + stime, seconds, per process name (`redis`, `node-2`, ...). */
  cpuS: Record<string, number>;
  /** Latest `herald_connections` of each survivor (its /metrics). */
  connections: Record<string, number>;
  /** Latest counts of the load generators (reconnect mode). */
  welcomes: number;
  waiting: number;
}

export interface CpuFigures {
  /** Highest % of one core over any 1 s window of the storm (the whole storm if it is shorter). */
  peak1sPct: number;
  /** Highest % of one core over one 250 ms sample. */
  peakSamplePct: number;
  /** Over the whole storm. */
  meanPct: number;
}

/** CPU of process `name` over [from, to] from the samples (the first one taken at `from`). */
export function cpuFigures(samples: readonly Sample[], name: string, from: number, to: number): CpuFigures {
  const s = samples.filter((x) => x.t >= from && x.t <= to + 250 && x.cpuS[name] !== undefined);
  const pct = (a: Sample, b: Sample) =>
    b.t > a.t ? ((b.cpuS[name]! - a.cpuS[name]!) / ((b.t - a.t) / 1000)) * 100 : 0;
  if (s.length < 2) return { peak1sPct: 0, peakSamplePct: 0, meanPct: 0 };
  const mean = pct(s[0]!, s[s.length - 1]!);
  let peak1s = -1;
  let peakSample = 0;
  let j = 0;
  for (let i = 1; i < s.length; i++) {
    peakSample = Math.max(peakSample, pct(s[i - 1]!, s[i]!));
    while (j + 1 < i && s[i]!.t - s[j + 1]!.t >= 950) j++;
    if (s[i]!.t - s[j]!.t >= 950) peak1s = Math.max(peak1s, pct(s[j]!, s[i]!));
  }
  return {
    peak1sPct: round(peak1s < 0 ? mean : peak1s, 1),
    peakSamplePct: round(peakSample, 1),
    meanPct: round(mean, 1),
  };
}

export interface Spread {
  first: number;
  p50: number;
  p90: number;
  last: number;
}

/** Quantiles of timestamps, in ms from `from`. */
export function spread(times: readonly number[], from: number): Spread {
  const t = [...times].sort((a, b) => a - b).map((x) => x - from);
  const q = (p: number) => t[Math.min(t.length - 1, Math.floor(p * t.length))] ?? 0;
  return { first: t[0] ?? 0, p50: q(0.5), p90: q(0.9), last: t[t.length - 1] ?? 0 };
}

/** Most timestamps in any window (t - 1000, t] (sliding, not aligned). */
export function peakPerSecond(times: readonly number[]): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= 1000) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/**
 * Highest rise of a counter sampled as [time, value] over windows of at least 950 ms within
 * [from, to] (per second), or the whole rise when the span is shorter than that.
 */
export function peakRate(series: ReadonlyArray<readonly [number, number]>, from: number, to: number): number {
  const s = series.filter(([t]) => t >= from - 250 && t <= to + 500);
  if (s.length < 2) return 0;
  let best = -1;
  let j = 0;
  for (let i = 1; i < s.length; i++) {
    while (j + 1 < i && s[i]![0] - s[j + 1]![0] >= 950) j++;
    const dt = s[i]![0] - s[j]![0];
    if (dt >= 950) best = Math.max(best, ((s[i]![1] - s[j]![1]) * 1000) / dt);
  }
  return Math.round(best < 0 ? s[s.length - 1]![1] - s[0]![1] : best);
}

export interface RunResult {
  run: number;
  clients: number;
  /** Devices that never got their first welcome (left out of the storm). */
  connectFailed: number;
  perNodeBefore: Record<string, number>;
  killed: { node: string; devices: number };
  survivors: string[];
  /** From the kill; `reconnectMs` is to the last welcome (null when not everyone came back). */
  drops: number;
  back: number;
  missing: number;
  refused4013: number;
  failures: number;
  failureReasons: Record<string, number>;
  reconnectMs: number | null;
  /** From the kill: when the clients saw their socket close, and when reconnects got welcome (ms). */
  dropMs: Spread;
  welcomeMs: Spread;
  /** The whole machine over the storm (all cores, other people's work included), and the load average at the end. */
  machineBusyPct: number;
  loadavg: number[];
  /** Machine-wide TcpExt counters over the storm: ListenOverflows, ListenDrops, TCPSynRetrans, TCPTimeouts. */
  tcp: Record<string, number>;
  /** Wall time the storm figures cover (kill to last welcome, or to the deadline). */
  stormMs: number;
  /** Per survivor: reconnect welcomes, their peak in any 1 s window, and connections after. */
  welcomesPerNode: Record<string, number>;
  peakWelcomesPerS: Record<string, number>;
  /** Per survivor: sessions admitted (herald_connects_total, from /metrics every 250 ms), peak per 1 s window. */
  peakAcceptsPerS: Record<string, number>;
  connectionsAfter: Record<string, number>;
  redisBaselinePct: number;
  redisCpu: CpuFigures;
  survivorCpu: Record<string, CpuFigures>;
  /** CPU seconds per process group over the storm. */
  cpuS: Record<string, number>;
  /** Redis commands from the kill to the end, per reconnect (the survivors' heartbeats included). */
  redisPerReconnect: unknown;
  /** Redis commands per second over the 2 quiet seconds before the kill (heartbeats, presence). */
  redisQuietPerS: unknown;
  verdicts: { absorbed: boolean; redisPeak: boolean; redisMean: boolean };
  /** Per app log (nodes, api, worker): warn and error/fatal lines, and the first few of them. */
  logs: Record<string, { warn: number; error: number; first: string[] }>;
  timeline: Array<Record<string, unknown>>;
}

export function verdicts(r: Omit<RunResult, 'verdicts'>, limitPerS: number, redisMaxPct: number) {
  return {
    absorbed:
      r.missing === 0 &&
      r.reconnectMs !== null &&
      Object.values(r.peakWelcomesPerS).every((x) => x <= limitPerS) &&
      Object.values(r.peakAcceptsPerS).every((x) => x <= limitPerS),
    redisPeak: r.redisCpu.peak1sPct <= redisMaxPct,
    redisMean: r.redisCpu.meanPct <= redisMaxPct,
  };
}

const n = (x: number) => x.toLocaleString('en-US');
const yes = (b: boolean) => (b ? 'yes' : '**no**');

export function markdown(results: readonly RunResult[], limitPerS: number, redisMaxPct: number): string {
  const lines = [
    `reconnect storm: one of 3 nodes SIGKILLed; limits: ${n(limitPerS)} welcomes/s per survivor (accept rate + burst), Redis CPU <= ${redisMaxPct}% of one core`,
    '',
    '| run | clients | per node before | killed | back | reconnect s | 4013 | other failures | peak welcomes/s per survivor (clients) / accepts/s (node) | Redis CPU % peak 1 s / mean (idle before) | survivors CPU % peak 1 s / mean | absorbed within accept rate | Redis CPU <= 50% (peak / mean) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const before = Object.entries(r.perNodeBefore)
      .map(([k, v]) => `${k} ${n(v)}`)
      .join(', ');
    const peaks = r.survivors
      .map((s) => `${s} ${n(r.peakWelcomesPerS[s] ?? 0)} / ${n(r.peakAcceptsPerS[s] ?? 0)}`)
      .join(', ');
    const cpu = r.survivors
      .map((s) => `${s} ${r.survivorCpu[s]?.peak1sPct ?? 0} / ${r.survivorCpu[s]?.meanPct ?? 0}`)
      .join(', ');
    const back = r.missing === 0 ? n(r.back) : `${n(r.back)} (**${n(r.missing)} missing**)`;
    const secs =
      r.reconnectMs === null ? `> ${(r.stormMs / 1000).toFixed(1)}` : (r.reconnectMs / 1000).toFixed(2);
    lines.push(
      `| ${r.run} | ${n(r.clients)} | ${before} | ${r.killed.node} (${n(r.killed.devices)}) | ${back} | ${secs} | ${n(r.refused4013)} | ${n(r.failures)} | ${peaks} | ${r.redisCpu.peak1sPct} / ${r.redisCpu.meanPct} (${r.redisBaselinePct}) | ${cpu} | ${yes(r.verdicts.absorbed)} | ${yes(r.verdicts.redisPeak)} / ${yes(r.verdicts.redisMean)} |`,
    );
  }
  lines.push('', 'CPU seconds over the storm, per process group:', '');
  const groups = Object.keys(results[0]?.cpuS ?? {});
  lines.push(`| run | ${groups.join(' | ')} |`, `| --- | ${groups.map(() => '---').join(' | ')} |`);
  for (const r of results) lines.push(`| ${r.run} | ${groups.map((g) => r.cpuS[g] ?? 0).join(' | ')} |`);
  for (const r of results) {
    lines.push(
      '',
      `run ${r.run}: sockets seen closed ${r.dropMs.first}-${r.dropMs.last} ms after the kill; welcomes at p50 ${r.welcomeMs.p50} ms, p90 ${r.welcomeMs.p90} ms, last ${r.welcomeMs.last} ms; machine ${r.machineBusyPct}% busy over the storm (all cores), load ${r.loadavg.map((l) => l.toFixed(1)).join(' ')}; machine TCP: ${Object.entries(
        r.tcp,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const reasons = Object.entries(r.failureReasons)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    if (reasons) lines.push(`run ${r.run}: other failures by reason: ${reasons}`);
    for (const [app, l] of Object.entries(r.logs))
      if (l.warn + l.error > 0)
        lines.push(
          `run ${r.run}: ${app} logged ${l.error} error and ${l.warn} warn line(s), first: ${l.first[0]}`,
        );
  }
  return lines.join('\n');
}
