/**
 * Keeps the benchmark harness (bench/, `npm run bench -w @herald/bench`) from rotting: runs it at a
 * tiny scale (a few hundred connections) against Herald (direct and through nginx), Socket.IO and,
 * when libnginx-mod-nchan is installed, Nchan, and checks that its numbers are sane.
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
  const jsonOut = path.join(dir, 'results.json');
  const args = [
    RUN,
    '--scale',
    '0.02',
    '--scenarios',
    'broadcast,single,batch',
    // 100 subscribers x 200 messages: enough server CPU to read from /proc (10 ms ticks) even for
    // Herald direct, which needs about 2 µs per delivery.
    '--broadcast-messages',
    '200',
    '--systems',
    'herald-direct,herald-nginx,socketio,nchan',
    '--out',
    dir,
    '--json-out',
    jsonOut,
    '--quiet',
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    // Bounded: the harness stops every server it started when it gets SIGTERM.
    const timer = setTimeout(() => child.kill('SIGTERM'), 200_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`bench exited with ${code}:\n${stderr.slice(-4000)}`);
  results = JSON.parse(fs.readFileSync(jsonOut, 'utf8')) as Results;
}, 240_000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('benchmark harness at a tiny scale', () => {
  it('runs Herald and Socket.IO, and Nchan unless it is reported as not installed', () => {
    for (const s of ['herald-direct', 'herald-nginx', 'socketio'])
      expect(results.systems[s]?.started).toBe(true);
    const nchan = results.systems.nchan!;
    if (!nchan.started) {
      // Never silently: the harness names the reason and how to install it.
      expect(nchan.skipped).toMatch(/libnginx-mod-nchan/);
      console.warn(`bench smoke: ${nchan.skipped}`);
    }
  });

  it.each(['broadcast', 'single', 'batch'])(
    '%s: every started system delivers everything, with sane figures',
    (name) => {
      const per = results.scenarios[name]!;
      for (const [system, info] of Object.entries(results.systems)) {
        if (!info.started) continue;
        const r = per[system]!;
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

  it('prints the markdown tables', () => {
    expect(stdout).toContain('### Broadcast');
    expect(stdout).toContain('| herald-nginx |');
    expect(stdout).toContain('### Targets');
  });
});
