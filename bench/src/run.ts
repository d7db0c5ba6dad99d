/**
 * `node bench/dist/run.js [--scale x] ...`: Herald (direct to nodes and through nginx stream),
 * Socket.IO and Nchan, side by side, in one run; every server is started here and stopped by PID.
 * Writes JSON under bench/results/ and prints markdown tables. See BENCHMARKS.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type KernelLimits,
  kernelLimits,
  nofileLimits,
  reachableNofile,
  socketsPerProcess,
} from './limits.js';
import { LoadGenPool } from './loadgen/pool.js';
import { NCHAN_MISSING, nchanModule } from './nchan.js';
import { type Options, parseArgs, sizes } from './options.js';
import { HttpPublisher } from './publisher.js';
import { type BenchResults, markdown } from './report.js';
import { type Ctx, peakOf, RUNNERS } from './scenarios.js';
import { FLOORS } from './system-types.js';
import {
  type RunningSystem,
  SSE_ONLY,
  SSE_SCENARIOS,
  SSE_SYSTEMS,
  type SystemName,
  startSystem,
} from './systems.js';

function machine() {
  const sh = (cmd: string) =>
    spawnSync('bash', ['-c', cmd], { encoding: 'utf8', timeout: 10_000 }).stdout.trim();
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: Number(sh('nproc')),
    memory: sh('free -h | sed -n 2p'),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    nginx: sh('nginx -v 2>&1'),
    redis: sh('redis-server --version'),
    loadavg: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
  };
}

/** Re-runs this process under a raised descriptor limit when the soft limit is below what is reachable. */
function reexecWithLimit(): boolean {
  if (process.env.HERALD_BENCH_WRAPPED) return false;
  const reachable = reachableNofile();
  if (nofileLimits().soft >= reachable) return false;
  const script = fileURLToPath(import.meta.url);
  const child = spawn(
    'bash',
    ['-c', `ulimit -n ${reachable}; exec "$0" "$@"`, process.execPath, script, ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, HERALD_BENCH_WRAPPED: '1' } },
  );
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  return true;
}

async function main(): Promise<void> {
  const o: Options = parseArgs(process.argv.slice(2));
  if (reexecWithLimit()) return;
  const log = (msg: string) => {
    if (!o.quiet) console.error(msg);
  };
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.mkdirSync(o.outDir, { recursive: true });
  const logRoot = path.join(o.outDir, `logs-${stamp}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-bench-'));
  const limits: KernelLimits = kernelLimits();
  for (const w of limits.warnings) log(`limit: ${w}`);

  const results: BenchResults = {
    meta: {
      command: `node bench/dist/run.js ${process.argv.slice(2).join(' ')}`.trim(),
      date: new Date().toISOString(),
      scale: o.scale,
      options: o,
      sizes: sizes(o),
      machine: machine(),
      limits,
      socketsPerProcess: socketsPerProcess(),
    },
    systems: {},
    scenarios: {},
  };
  const systems: SystemName[] = [];
  for (const s of o.systems) {
    if ((s === 'nchan' || s === 'nchan-sse') && !nchanModule()) {
      results.systems[s] = { started: false, skipped: NCHAN_MISSING };
      log(`SKIPPING nchan: ${NCHAN_MISSING}`);
      continue;
    }
    results.systems[s] = { started: false };
    systems.push(s);
  }

  const peak = Math.max(...o.scenarios.map((s) => peakOf(s, o)));
  const generators = Math.max(o.generators, Math.ceil((peak * 1.2) / socketsPerProcess()));
  log(`load generators: ${generators}; sources 127.0.0.2-127.0.0.${o.sources + 1}; scale ${o.scale}`);
  const pool = await LoadGenPool.start(generators, path.join(logRoot, 'loadgen'));
  results.meta.loadGenerators = generators;
  const pub = new HttpPublisher(Math.max(o.publishWindow, 64));

  let current: RunningSystem | undefined;
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    await current?.stop().catch(() => undefined);
    await pool.stop().catch(() => undefined);
    pub.close();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      void shutdown(sig).finally(() => {
        fs.rmSync(tmp, { recursive: true, force: true });
        process.exit(130);
      });
    });

  const outFile = o.jsonOut ?? path.join(o.outDir, `bench-${stamp}.json`);
  const save = () => {
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    fs.writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  };

  try {
    for (const scenario of o.scenarios) {
      const per: Record<string, Record<string, unknown>> = {};
      results.scenarios[scenario] = per;
      for (const name of systems) {
        if (stopping) break;
        if (scenario === 'maxconn' && name === 'herald-direct') {
          per[name] = { skipped: 'n/a: this scenario goes through the balancer (see herald-nginx)' };
          continue;
        }
        const floor = FLOORS[name];
        if (floor && !floor.scenarios.includes(scenario)) {
          per[name] = { skipped: floor.skipped };
          continue;
        }
        if (SSE_SYSTEMS.includes(name) && !SSE_SCENARIOS.includes(scenario)) {
          per[name] = { skipped: SSE_ONLY };
          continue;
        }
        const peakConns = peakOf(scenario, o);
        const dir = path.join(tmp, `${scenario}-${name}`);
        const logDir = path.join(logRoot, `${scenario}-${name}`);
        log(`${scenario} / ${name}: starting (peak ${peakConns} connections)`);
        const t0 = Date.now();
        try {
          current = await startSystem(name, {
            dir,
            logDir,
            peak: peakConns,
            nodes: o.nodes,
            redisShards: o.redisShards,
            balancer: scenario === 'maxconn' && name === 'socketio',
            cpuProf: o.cpuProf ? path.join(o.cpuProf, `${scenario}-${name}`) : undefined,
            aof: o.heraldAof,
          });
          results.systems[name]!.started = true;
          const ctx: Ctx = { sys: current, pool, o, pub, log };
          const r = await RUNNERS[scenario](ctx);
          per[name] = { setup: current.info, ...r, seconds: Math.round((Date.now() - t0) / 1000) };
        } catch (err) {
          log(`${scenario} / ${name} failed: ${(err as Error).stack ?? err}`);
          per[name] = { error: (err as Error).message, setup: current?.info };
        } finally {
          await pool.close().catch((err: Error) => log(`closing clients: ${err.message}`));
          await current?.stop().catch((err: Error) => log(`stopping ${name}: ${err.message}`));
          current = undefined;
          fs.rmSync(dir, { recursive: true, force: true });
          // Let sockets in TIME_WAIT and freed memory settle between runs.
          await new Promise((r) => setTimeout(r, o.pauseMs));
        }
        save();
      }
    }
  } finally {
    await shutdown('done');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  results.meta.loadavgAfter = fs.readFileSync('/proc/loadavg', 'utf8').trim();
  results.meta.logs = logRoot;
  save();
  console.log(markdown(results));
  console.log(`\nJSON: ${outFile}\nlogs: ${logRoot}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
