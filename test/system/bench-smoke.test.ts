/**
 * Keeps the benchmark harness (bench/, `npm run bench -w @herald/bench`) from rotting: runs it at a
 * tiny scale (a few hundred connections) against Herald (direct and through nginx), Socket.IO and,
 * when libnginx-mod-nchan is installed, Nchan, each over WebSocket and, for Herald direct and
 * Nchan, over Server-Sent Events too, and checks that its numbers are sane.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUN = path.join(ROOT, 'bench', 'dist', 'run.js');

type Any = Record<string, unknown>;
interface Results {
  meta: Any;
  systems: Record<string, { started: boolean; skipped?: string }>;
  scenarios: Record<string, Record<string, Any>>;
}

let dir: string;
let results: Results;
let stdout = '';
/** The second, smaller run: the idle scenario of the SSE variants. */
let idle: Results;
let idleStdout = '';

/** Runs the harness with `args` (bounded: SIGTERM makes it stop every server it started). */
async function bench(
  args: string[],
  jsonOut: string,
  timeoutMs: number,
): Promise<{ res: Results; out: string }> {
  const child = spawn(process.execPath, [RUN, ...args, '--out', dir, '--json-out', jsonOut, '--quiet'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`bench ${args.join(' ')} exited with ${code}:\n${stderr.slice(-4000)}`);
  return { res: JSON.parse(fs.readFileSync(jsonOut, 'utf8')) as Results, out };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-bench-smoke-'));
  if (!fs.existsSync(RUN)) {
    // `npm test` builds every workspace first; a bare vitest run may not have.
    const tsc = spawnSync(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'bench/tsconfig.build.json'],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    if (tsc.status !== 0) throw new Error(`building bench failed:\n${tsc.stdout}${tsc.stderr}`);
  }
  const main = await bench(
    [
      '--scale',
      '0.02',
      '--scenarios',
      'broadcast,single,batch',
      // 100 subscribers x 200 messages: enough server CPU to read from /proc (10 ms ticks) even for
      // Herald direct, which needs about 2 µs per delivery.
      '--broadcast-messages',
      '200',
      '--systems',
      // herald-floor-durable: the floor of Herald's design (bare API and nodes, an append), in
      // single and batch only (herald-floor is the same code without the append).
      'herald-direct,herald-nginx,socketio,nchan,herald-direct-sse,nchan-sse,herald-floor-durable',
      // 0.3 s between runs, not 1.5: a few hundred sockets, and every run is on fresh ports.
      '--pause-ms',
      '300',
    ],
    path.join(dir, 'results.json'),
    200_000,
  );
  results = main.res;
  stdout = main.out;
  // 50 then 100 idle SSE connections (the smallest sizes), next to Herald's WebSocket.
  const second = await bench(
    // RSS sampled every 250 ms, not every second, until three in a row agree (at most 5 s, not 20):
    // the same settle path; the smoke test checks that a figure comes out, not its size.
    [
      '--scale',
      '0.005',
      '--scenarios',
      'idle',
      '--systems',
      'herald-direct,herald-direct-sse,nchan-sse',
      '--pause-ms',
      '300',
      '--settle-ms',
      '250',
    ],
    path.join(dir, 'idle.json'),
    100_000,
  );
  idle = second.res;
  idleStdout = second.out;
}, 330_000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('benchmark harness at a tiny scale', () => {
  it('runs Herald and Socket.IO, and Nchan unless it is reported as not installed', () => {
    for (const s of [
      'herald-direct',
      'herald-nginx',
      'socketio',
      'herald-direct-sse',
      'herald-floor-durable',
    ])
      expect(results.systems[s]?.started).toBe(true);
    for (const n of ['nchan', 'nchan-sse']) {
      const nchan = results.systems[n]!;
      if (!nchan.started) {
        // Never silently: the harness names the reason and how to install it.
        expect(nchan.skipped).toMatch(/libnginx-mod-nchan/);
        console.warn(`bench smoke: ${nchan.skipped}`);
      }
    }
  });

  it.each(['broadcast', 'single', 'batch'])(
    '%s: every started system delivers everything, with sane figures',
    (name) => {
      const per = results.scenarios[name]!;
      for (const [system, info] of Object.entries(results.systems)) {
        if (!info.started) continue;
        const r = per[system]!;
        // The SSE variants run in idle and broadcast only, and say so elsewhere.
        if (system.endsWith('-sse') && name !== 'broadcast') {
          expect(r.skipped, `${name}/${system}`).toMatch(/SSE variants run in the idle and broadcast/);
          continue;
        }
        if (system.startsWith('herald-floor') && name === 'broadcast') {
          expect(r.skipped, `${name}/${system}`).toMatch(/architecture floor runs in the single and batch/);
          continue;
        }
        // Only Herald has a batch publish API; the peers say so instead of a figure.
        if (name === 'batch' && !system.startsWith('herald')) {
          expect(r.skipped, `${name}/${system}`).toMatch(/no batch publish API/);
          continue;
        }
        expect(r.error, `${name}/${system}`).toBeUndefined();
        expect(r.delivered as number, `${name}/${system} delivered`).toBeGreaterThan(0);
        expect(r.publishFailed, `${name}/${system} publishes refused`).toBe(0);
        expect(r.lost, `${name}/${system} lost`).toBe(0);
        expect(r.duplicates, `${name}/${system} duplicates`).toBe(0);
        expect(r.deliveriesPerS as number, `${name}/${system} deliveries/s`).toBeGreaterThan(0);
        expect(r.deliveriesPerServerCpuS as number, `${name}/${system} per CPU-s`).toBeGreaterThan(0);
        const lat = r.latencyMs as { p50: number; p99: number; max: number };
        expect(lat.p50).toBeGreaterThan(0);
        expect(lat.p99).toBeGreaterThanOrEqual(lat.p50);
        expect(lat.max).toBeGreaterThanOrEqual(lat.p99);
        expect(lat.max).toBeLessThan(60_000);
      }
    },
  );

  it('Herald SSE devices ack over POST /v1/acks, every one answered 204; WebSocket devices ack too', () => {
    const sse = results.scenarios.broadcast!['herald-direct-sse']!;
    expect(sse.acks as number).toBeGreaterThan(0);
    expect(sse.ackErrors).toBeUndefined();
    expect(results.scenarios.broadcast!['herald-direct']!.acks as number).toBeGreaterThan(0);
  });

  it('idle: SSE connections stay open and their memory is measured', () => {
    for (const [system, info] of Object.entries(idle.systems)) {
      if (!info.started) continue;
      const r = idle.scenarios.idle![system]!;
      expect(r.error, system).toBeUndefined();
      expect(r.openAtEnd, `${system} open at the end`).toBe(100);
      const at2 = r.at2 as { connections: number; kbPerConn: number };
      expect(at2.connections).toBe(100);
      expect(Number.isFinite(at2.kbPerConn), `${system} KiB per connection`).toBe(true);
    }
    expect(idleStdout).toContain('| herald-direct-sse |');
  });

  it('idle-ab: SSE and WebSocket side by side, RSS and heap after full GCs', () => {
    // 200 of each (one round), one run: the tool's own path (two nodes, GC by SIGUSR2, readings, medians).
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bench', 'dist', 'idle-ab.js'), '200', '1'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, IDLE_AB_GC_WAIT_MS: '300' },
      timeout: 90_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const median = /^\| median \| (.+) \|$/m.exec(r.stdout)?.[1]?.split(' | ').map(Number) ?? [];
    expect(median).toHaveLength(4);
    // Heap per connection (WebSocket, SSE): something, and not absurd.
    for (const heap of median.slice(2)) expect(heap).toBeGreaterThan(0);
    for (const heap of median.slice(2)) expect(heap).toBeLessThan(200);
  }, 120_000);

  it('storm: a node holding about a third of 300 devices is SIGKILLed, and every one comes back', () => {
    // The tool's own path: 3 nodes behind nginx, the SDK's backoff in the load generators, the
    // 250 ms sampler, Redis commandstats, the table and the JSON.
    const out = path.join(dir, 'storm');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bench', 'dist', 'storm.js'), '300', '1'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, STORM_OUT_DIR: out, STORM_WAIT_MS: '30000' },
      timeout: 90_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('| run | clients | per node before | killed |');
    expect(r.stdout).toMatch(/^\| 1 \| 300 \| /m);
    const file = fs.readdirSync(out).find((f) => /^storm-.*\.json$/.test(f));
    expect(file).toBeDefined();
    const res = JSON.parse(fs.readFileSync(path.join(out, file!), 'utf8')) as { runs: Any[] };
    const run = res.runs[0]!;
    const killed = run.killed as { node: string; devices: number };
    expect(killed.devices).toBeGreaterThan(0);
    expect(run.drops).toBe(killed.devices);
    expect(run.back).toBe(killed.devices);
    expect(run.missing).toBe(0);
    expect(run.reconnectMs as number).toBeGreaterThan(0);
    expect((run.verdicts as { absorbed: boolean }).absorbed).toBe(true);
    // The survivors hold everyone again.
    const after = Object.values(run.connectionsAfter as Record<string, number>);
    expect(after.reduce((a, b) => a + b, 0)).toBe(300);
  }, 120_000);

  it('prints the markdown tables', () => {
    expect(stdout).toContain('### Broadcast');
    expect(stdout).toContain('| herald-nginx |');
    expect(stdout).toContain('| nchan-sse |');
    expect(stdout).toContain('### Server-Sent Events');
    expect(stdout).toContain('### Targets');
    expect(stdout).toContain('SSE broadcast deliveries per server CPU-s >= 1.5x Nchan SSE');
    // The SSE rows stay out of the tables of scenarios they do not run in.
    const single = stdout.slice(stdout.indexOf('### Single-device'));
    expect(single.slice(0, single.indexOf('\n\n###'))).not.toContain('-sse');
    expect(idleStdout).toContain("idle KiB per added SSE connection <= Herald's WebSocket figure + 1 KiB");
  });
});
