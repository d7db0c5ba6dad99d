import type { Result } from './scenarios.js';
import { SSE_SCENARIOS, SSE_SYSTEMS, type SystemName } from './systems.js';

/** The JSON results of a run (what run.ts writes under bench/results/). */
export interface BenchResults {
  meta: Record<string, unknown> & { scale: number };
  systems: Record<string, { started: boolean; skipped?: string }>;
  /** scenario -> system -> result (or { skipped } / { error }). */
  scenarios: Record<string, Record<string, Result>>;
}

type Any = Record<string, unknown>;

function get(o: unknown, p: string): unknown {
  let cur: unknown = o;
  for (const k of p.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Any)[k];
  }
  return cur;
}

const num = (o: unknown, p: string): number | undefined => {
  const v = get(o, p);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};

function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined) return '-';
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A row label, or the reason a system has no figures in this scenario. */
function status(r: Result | undefined): string | undefined {
  if (!r) return 'not run';
  if (typeof r.skipped === 'string') return `skipped: ${r.skipped}`;
  if (typeof r.error === 'string') return `error: ${r.error.split('\n')[0]}`;
  return undefined;
}

function rowsFor(
  res: BenchResults,
  scenario: string,
  cells: (r: Result, sys: string) => string[],
  width: number,
): string[][] {
  const per = res.scenarios[scenario] ?? {};
  // The SSE variants take part in two scenarios; the other tables leave them out (also when a
  // variant did not start at all: Nchan not installed).
  const sseHere = SSE_SCENARIOS.includes(scenario);
  const systems = Object.keys(res.systems).filter(
    (sys) => sseHere || !SSE_SYSTEMS.includes(sys as SystemName),
  );
  return systems.map((sys) => {
    const r = per[sys];
    const s = status(r);
    if (s) return [sys, s, ...Array(width - 2).fill('')];
    return [sys, ...cells(r!, sys)];
  });
}

/**
 * Server RSS added per connection between the two idle sizes: what one more connection costs,
 * without the fixed growth a process shows once it is under load (heap sizing, code caches),
 * which the average at one size spreads over the connections.
 */
function marginalKb(r: Result | undefined): number | undefined {
  const n1 = num(r, 'at1.connections');
  const n2 = num(r, 'at2.connections');
  const d1 = num(r, 'at1.serverRssDeltaKb');
  const d2 = num(r, 'at2.serverRssDeltaKb');
  if (n1 === undefined || n2 === undefined || d1 === undefined || d2 === undefined || n2 <= n1)
    return undefined;
  return (d2 - d1) / (n2 - n1);
}

function lossCell(r: Result, base = ''): string {
  const lost = num(r, `${base}lost`);
  const dropped = num(r, `${base}dropped`);
  const failed = num(r, `${base}publishFailed`);
  return `${fmt(lost)}${dropped ? ` (${fmt(dropped)} dropped)` : ''}${failed ? ` (${fmt(failed)} publish failed)` : ''}`;
}

export function markdown(res: BenchResults): string {
  const out: string[] = [];
  const sc = res.scenarios;
  if (sc.idle) {
    const s =
      (get(
        Object.values(sc.idle).find((r) => get(r, 'sizes')),
        'sizes',
      ) as number[]) ?? [];
    out.push(`### Idle memory per connection (${s.join(' and ')} connections)`);
    out.push(
      table(
        [
          'system',
          `KiB/conn @${s[0] ?? '?'}`,
          `KiB/conn @${s[1] ?? '?'}`,
          'of which push processes',
          `KiB per added conn, ${s[0] ?? '?'} -> ${s[1] ?? '?'}`,
          'balancer KiB/conn',
          'failed',
        ],
        rowsFor(
          res,
          'idle',
          (r, sys) => [
            fmt(num(r, 'at1.kbPerConn'), 2),
            fmt(num(r, 'at2.kbPerConn'), 2),
            fmt(
              num(r, 'at2.kbPerConnByGroup.nodes') ??
                num(r, 'at2.kbPerConnByGroup.socketio') ??
                num(r, 'at2.kbPerConnByGroup.nginx'),
              2,
            ),
            fmt(marginalKb(r), 2),
            sys.startsWith('nchan') ? '-' : fmt(num(r, 'at2.kbPerConnByGroup.nginx'), 2),
            fmt((num(r, 'first.failed') ?? 0) + (num(r, 'second.failed') ?? 0)),
          ],
          7,
        ),
      ),
    );
  }
  if (sc.connect) {
    out.push('### Time to connect');
    out.push(
      table(
        ['system', 'connections', 'time (s)', 'connects/s', 'server CPU-s', 'failed'],
        rowsFor(
          res,
          'connect',
          (r) => [
            fmt(num(r, 'ok')),
            fmt((num(r, 'wallMs') ?? 0) / 1000, 2),
            fmt(num(r, 'connectsPerS')),
            fmt(num(r, 'cpu.serverCpuS'), 2),
            fmt(num(r, 'failed')),
          ],
          6,
        ),
      ),
    );
  }
  if (sc.broadcast) {
    const any = Object.values(sc.broadcast).find((r) => num(r, 'subscribers') !== undefined);
    out.push(
      `### Broadcast: ${fmt(num(any, 'subscribers'))} subscribers of one topic, ${fmt(num(any, 'messages'))} messages`,
    );
    out.push(
      table(
        [
          'system',
          'deliveries/s',
          'per server CPU-s',
          'per CPU-s incl. balancer',
          'server CPU-s',
          'p50 ms',
          'p99 ms',
          'max ms',
          'lost',
        ],
        rowsFor(
          res,
          'broadcast',
          (r) => [
            fmt(num(r, 'deliveriesPerS')),
            fmt(num(r, 'deliveriesPerServerCpuS')),
            fmt(num(r, 'deliveriesPerCpuSWithBalancer')),
            fmt(num(r, 'cpu.serverCpuS'), 2),
            fmt(num(r, 'latencyMs.p50'), 1),
            fmt(num(r, 'latencyMs.p99'), 1),
            fmt(num(r, 'latencyMs.max'), 1),
            lossCell(r),
          ],
          9,
        ),
      ),
    );
  }
  if (sc.rate) {
    const any = Object.values(sc.rate).find((r) => get(r, 'runs'));
    const rates = Object.keys((get(any, 'runs') as Any) ?? {});
    out.push(`### Publish-to-receipt latency, ${fmt(num(any, 'subscribers'))} subscribers of one topic`);
    const head = ['system'];
    for (const rt of rates) head.push(`${rt}/s p50 ms`, `${rt}/s p99 ms`, `${rt}/s max ms`, `${rt}/s lost`);
    out.push(
      table(
        head,
        rowsFor(
          res,
          'rate',
          (r) =>
            rates.flatMap((rt) => [
              fmt(num(r, `runs.${rt}.latencyMs.p50`), 1),
              fmt(num(r, `runs.${rt}.latencyMs.p99`), 1),
              fmt(num(r, `runs.${rt}.latencyMs.max`), 1),
              lossCell(r, `runs.${rt}.`),
            ]),
          head.length,
        ),
      ),
    );
  }
  for (const [name, how] of [
    [
      'batch',
      (r: Result | undefined) => `${fmt(num(r, 'batchSize'))} per request (POST /v1/notifications/batch)`,
    ],
    ['single', () => 'one device each'],
  ] as const) {
    if (!sc[name]) continue;
    const any = Object.values(sc[name]).find((r) => num(r, 'devices') !== undefined);
    out.push(
      `### Single-device publishes: ${fmt(num(any, 'messages'))} notifications to ${fmt(num(any, 'devices'))} devices, ${how(any)}`,
    );
    out.push(
      table(
        ['system', 'accepted/s', 'delivered/s', 'per server CPU-s', 'p50 ms', 'p99 ms', 'lost'],
        rowsFor(
          res,
          name,
          (r) => [
            fmt(num(r, 'acceptedPerS')),
            fmt(num(r, 'deliveriesPerS')),
            fmt(num(r, 'deliveriesPerServerCpuS')),
            fmt(num(r, 'latencyMs.p50'), 1),
            fmt(num(r, 'latencyMs.p99'), 1),
            lossCell(r),
          ],
          7,
        ),
      ),
    );
  }
  if (sc.maxconn) {
    out.push('### Most connections through the balancer, then one broadcast to all');
    out.push(
      table(
        [
          'system',
          'tried',
          'open',
          'reached by broadcast',
          'last receipt (ms)',
          'p50 ms',
          'server RSS MiB',
          'failures',
        ],
        rowsFor(
          res,
          'maxconn',
          (r) => [
            fmt(num(r, 'target')),
            fmt(num(r, 'openBeforeBroadcast')),
            fmt(num(r, 'reached')),
            fmt(num(r, 'broadcast.latencyMs.max'), 0),
            fmt(num(r, 'broadcast.latencyMs.p50'), 0),
            fmt((num(r, 'serverRssKb') ?? 0) / 1024, 0),
            JSON.stringify({
              ...((get(r, 'connect.errors') as Any) ?? {}),
              ...((get(r, 'logReasons') as Any) ?? {}),
              // A broadcast publish the server refused or did not answer reaches nobody.
              ...(num(r, 'broadcast.publishFailed') ? { 'broadcast publish failed': 1 } : {}),
            })
              .replaceAll('|', '/')
              .slice(0, 160),
          ],
          8,
        ),
      ),
    );
  }
  out.push(ratios(res));
  out.push(sseRatios(res));
  out.push(targets(res));
  return out.filter(Boolean).join('\n\n');
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a !== undefined && b !== undefined && b > 0 ? `${(a / b).toFixed(2)}x` : '-';
}

function ratios(res: BenchResults): string {
  const sc = res.scenarios;
  const rows: string[][] = [];
  const metric = (label: string, scenario: string, p: string, lowerIsBetter = false) => {
    for (const h of ['herald-direct', 'herald-nginx']) {
      const hv = num(sc[scenario]?.[h], p);
      if (hv === undefined) continue;
      const vs = (peer: string) => {
        const pv = num(sc[scenario]?.[peer], p);
        return lowerIsBetter ? ratio(pv, hv) : ratio(hv, pv);
      };
      rows.push([`${label} (${h})`, vs('nchan'), vs('socketio')]);
    }
  };
  metric('broadcast deliveries per server CPU-s', 'broadcast', 'deliveriesPerServerCpuS');
  metric('broadcast deliveries/s', 'broadcast', 'deliveriesPerS');
  metric('single-device delivered/s', 'single', 'deliveriesPerS');
  metric('single-device per server CPU-s', 'single', 'deliveriesPerServerCpuS');
  metric('idle memory per connection (peer / Herald)', 'idle', 'at2.kbPerConn', true);
  metric('connect time (peer / Herald)', 'connect', 'wallMs', true);
  if (rows.length === 0) return '';
  return `### Ratios (Herald vs peer; above 1x means Herald is better)\n\n${table(['metric', 'vs Nchan', 'vs Socket.IO'], rows)}`;
}

/** Herald's SSE against Nchan's EventSource, and against Herald's own WebSocket, same run. */
function sseRatios(res: BenchResults): string {
  const sc = res.scenarios;
  const h = 'herald-direct-sse';
  const rows: string[][] = [];
  const row = (
    label: string,
    scenario: string,
    p: string,
    lowerIsBetter: boolean,
    f = (r: Result | undefined) => num(r, p),
  ) => {
    const hv = f(sc[scenario]?.[h]);
    if (hv === undefined) return;
    const vs = (peer: string) => {
      const pv = f(sc[scenario]?.[peer]);
      return lowerIsBetter ? ratio(pv, hv) : ratio(hv, pv);
    };
    rows.push([label, fmt(hv, lowerIsBetter ? 2 : 0), vs('nchan-sse'), vs('herald-direct')]);
  };
  row('broadcast deliveries per server CPU-s', 'broadcast', 'deliveriesPerServerCpuS', false);
  row('broadcast deliveries/s', 'broadcast', 'deliveriesPerS', false);
  row('idle KiB per connection (peer / Herald SSE)', 'idle', 'at2.kbPerConn', true);
  row('idle KiB per added connection (peer / Herald SSE)', 'idle', '', true, marginalKb);
  if (rows.length === 0) return '';
  return `### Server-Sent Events (herald-direct-sse vs Nchan's EventSource, and vs Herald's WebSocket; above 1x means Herald SSE is better)\n\n${table(['metric', 'herald-direct-sse', 'vs nchan-sse', 'vs herald-direct (WebSocket)'], rows)}`;
}

function targets(res: BenchResults): string {
  const sc = res.scenarios;
  const rows: string[][] = [];
  const verdict = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? 'met' : 'NOT met');
  {
    const b = num(sc.broadcast?.['herald-direct-sse'], 'deliveriesPerServerCpuS');
    const n = num(sc.broadcast?.['nchan-sse'], 'deliveriesPerServerCpuS');
    if (b !== undefined || n !== undefined)
      rows.push([
        'SSE broadcast deliveries per server CPU-s >= 1.5x Nchan SSE (herald-direct-sse vs nchan-sse)',
        ratio(b, n),
        verdict(b !== undefined && n !== undefined ? b >= 1.5 * n : undefined),
      ]);
    const sse = marginalKb(sc.idle?.['herald-direct-sse']);
    const ws = marginalKb(sc.idle?.['herald-direct']);
    if (sse !== undefined || ws !== undefined)
      rows.push([
        "idle KiB per added SSE connection <= Herald's WebSocket figure + 1 KiB (herald-direct-sse vs herald-direct)",
        `${fmt(sse, 2)} vs ${fmt(ws, 2)} + 1 KiB`,
        verdict(sse !== undefined && ws !== undefined ? sse <= ws + 1 : undefined),
      ]);
  }
  for (const h of ['herald-direct', 'herald-nginx']) {
    const b = num(sc.broadcast?.[h], 'deliveriesPerServerCpuS');
    const n = num(sc.broadcast?.nchan, 'deliveriesPerServerCpuS');
    const s = num(sc.broadcast?.socketio, 'deliveriesPerServerCpuS');
    rows.push([
      `broadcast deliveries per server CPU-s >= 1.25x Nchan (${h})`,
      ratio(b, n),
      verdict(b !== undefined && n !== undefined ? b >= 1.25 * n : undefined),
    ]);
    rows.push([
      `broadcast deliveries per server CPU-s >= 3.5x Socket.IO (${h})`,
      ratio(b, s),
      verdict(b !== undefined && s !== undefined ? b >= 3.5 * s : undefined),
    ]);
    const kb = num(sc.idle?.[h], 'at2.kbPerConn');
    const kbNodes = num(sc.idle?.[h], 'at2.kbPerConnByGroup.nodes');
    const added = marginalKb(sc.idle?.[h]);
    rows.push([
      `idle RSS <= 8 KB per connection (${h}; all server processes / push nodes only; per added connection 10k -> 20k)`,
      `${fmt(kb, 2)} / ${fmt(kbNodes, 2)} KiB; ${fmt(added, 2)} KiB per added connection`,
      verdict(kb === undefined ? undefined : kb <= 8),
    ]);
    const ms = num(sc.connect?.[h], 'wallMs');
    const failed = num(sc.connect?.[h], 'failed');
    rows.push([
      `${fmt(num(sc.connect?.[h], 'size'))} connects <= 2 s (${h})`,
      `${fmt((ms ?? Number.NaN) / 1000, 2)} s`,
      verdict(ms === undefined ? undefined : ms <= 2000 && failed === 0),
    ]);
    for (const [sn, how] of [
      ['single', 'one per request'],
      ['batch', 'batches'],
    ] as const) {
      const acc = num(sc[sn]?.[h], 'acceptedPerS');
      const del = num(sc[sn]?.[h], 'deliveriesPerS');
      const lost = num(sc[sn]?.[h], 'lost');
      rows.push([
        `>= 10,000 single-device notifications/s accepted and delivered (${h}, ${how})`,
        `${fmt(acc)} accepted/s, ${fmt(del)} delivered/s`,
        verdict(
          acc === undefined || del === undefined ? undefined : acc >= 10_000 && del >= 10_000 && lost === 0,
        ),
      ]);
    }
  }
  const p99 = num(sc.rate?.['herald-nginx'], 'runs.10.latencyMs.p99');
  rows.push([
    'p99 <= 25 ms, 2,000 subscribers at 10 msg/s through nginx (herald-nginx)',
    `${fmt(p99, 1)} ms`,
    verdict(
      p99 === undefined ? undefined : p99 <= 25 && num(sc.rate?.['herald-nginx'], 'runs.10.lost') === 0,
    ),
  ]);
  const mc = sc.maxconn?.['herald-nginx'];
  const target = num(mc, 'target');
  const reached = num(mc, 'reached');
  const last = num(mc, 'broadcast.latencyMs.max');
  rows.push([
    `${fmt(target)} connections through nginx, a broadcast reaching all within 2 s (herald-nginx)`,
    `${fmt(reached)} reached, last after ${fmt(last)} ms`,
    verdict(
      target === undefined || reached === undefined
        ? undefined
        : reached >= target && (last ?? Infinity) <= 2000,
    ),
  ]);
  const note =
    res.meta.scale === 1
      ? ''
      : `\n\nScale ${res.meta.scale}: the targets are stated for scale 1; these verdicts are for the scaled sizes.`;
  return `### Targets\n\n${table(['target', 'measured', 'verdict'], rows)}${note}`;
}
