import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FanoutJob } from '@herald/protocol';
import { FANOUT_JOB, FANOUT_QUEUE, fanoutJobOptions, queueOptions } from '@herald/store';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerApp } from '../src/app.js';
import { notification, silent, startRedis, type TestRedis, until, workerConfig, world } from './helpers.js';

// Issue #12: a worker killed with SIGKILL right after it took a user fan-out, and restarted at
// once, left the notification `sending` with 0 targets for 60-67 s (BullMQ's 30 s lock and 30 s
// stalled check). With HERALD_JOB_LOCK_MS=6000 and HERALD_STALLED_CHECK_MS=1500 (the defaults,
// not set here) the job is resumed once the dead worker's lock expires: at most 6 s after the
// kill, plus a stalled check (1.5 s), plus the rest of the fan-out.
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PREFIX = 'recovery';
const DEVICES = 2000;
/** Small chunks: the fan-out takes long enough to be killed in the middle of it. */
const CHUNK = 10;
const RECOVERY_BOUND_MS = 10_000;

let server: TestRedis;
let redis: Redis;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!fs.existsSync(MAIN))
    throw new Error(`${MAIN} missing: run npx tsc -p apps/worker/tsconfig.build.json`);
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  redis?.disconnect();
  await server?.stop();
});

/** A worker process as production runs it; resolves once it has started. */
async function startWorker(): Promise<{ child: ChildProcess; out: { stdout: string } }> {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH,
      REDIS_URL: server.url,
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: '0',
      HERALD_REDIS_PREFIX: PREFIX,
      HERALD_FANOUT_CHUNK: String(CHUNK),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const out = { stdout: '' };
  child.stdout?.on('data', (b: Buffer) => {
    out.stdout += b.toString();
  });
  await until('worker started', () => /fan-out worker started/.test(out.stdout), 10_000);
  return { child, out };
}

describe('a worker killed in the middle of a fan-out', () => {
  it('is resumed within seconds of a restart, by one worker at a time, and every device gets it', async () => {
    const w = world(redis, PREFIX, CHUNK);
    const devices = Array.from({ length: DEVICES }, (_, i) => `big-${i}`);
    await redis.sadd(w.keys.userDevices('big'), ...devices);
    const queue = new Queue<FanoutJob>(FANOUT_QUEUE, {
      connection: new Redis(server.url),
      ...queueOptions(w.keys),
    });
    try {
      const first = await startWorker();
      const job = await notification(w, { users: ['big'] });
      await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id));
      // Kill it as soon as it has taken the job (the fault run killed within ~10 ms of the 202).
      await until(
        'fan-out started',
        async () => ((await w.status.get(job.id))?.state === 'sending' ? true : undefined),
        10_000,
      );
      const exited = once(first.child, 'exit');
      process.kill(first.child.pid as number, 'SIGKILL');
      await exited;
      const killedAt = Date.now();
      const before = await w.status.get(job.id);
      expect(before?.state, 'killed before the fan-out finished').toBe('sending');
      expect(before?.counts.targets).toBeLessThan(DEVICES);

      const second = await startWorker();
      const readyAt = Date.now();
      const sent = await until(
        'status sent',
        async () => {
          const s = await w.status.get(job.id);
          return s?.state === 'sent' ? s : undefined;
        },
        RECOVERY_BOUND_MS + 5000,
      );
      const recoveredMs = Date.now() - readyAt;
      expect(recoveredMs, `sent ${recoveredMs} ms after the new worker started`).toBeLessThan(
        RECOVERY_BOUND_MS,
      );
      expect(Date.now() - killedAt).toBeLessThan(RECOVERY_BOUND_MS + 2000);
      expect(second.out.stdout).toMatch(/fan-out stalled/);

      // Every device has it, at most twice: the dead worker's copy and the resumed one. A user's
      // devices are resumed from the start of that user (fanout.ts saves progress per user),
      // so what the first worker appended before the kill, plus its chunk in flight, comes
      // again, and is counted again; the SDK drops the duplicates by id. A third copy would
      // mean two live workers ran the job side by side.
      const entries = await Promise.all(devices.map((d) => redis.xrange(w.keys.inbox(d).stream, '-', '+')));
      const copies = entries.map((e) => e.filter(([, f]) => f[f.indexOf('i') + 1] === job.id).length);
      expect(copies.filter((n) => n === 0)).toHaveLength(0);
      expect(copies.filter((n) => n > 2)).toHaveLength(0);
      const doneBeforeKill = (before?.counts.targets ?? 0) + CHUNK;
      expect(copies.filter((n) => n === 2).length).toBeLessThanOrEqual(doneBeforeKill);
      expect(sent.counts.targets).toBeGreaterThanOrEqual(DEVICES);
      expect(sent.counts.targets).toBeLessThanOrEqual(DEVICES + doneBeforeKill);

      const exit = once(second.child, 'exit');
      second.child.kill('SIGTERM');
      expect((await exit)[0]).toBe(0);
    } finally {
      await queue.close();
    }
  });
});

describe('a worker that lost its lock', () => {
  it('stops at its next chunk and leaves the job to the lock holder', async () => {
    const prefix = 'lost';
    const app = await startWorkerApp(
      workerConfig(server.url, prefix, { HERALD_FANOUT_CHUNK: String(CHUNK) }),
      silent,
    );
    const w = world(redis, prefix, CHUNK);
    const queue = new Queue<FanoutJob>(FANOUT_QUEUE, {
      connection: new Redis(server.url),
      ...queueOptions(w.keys),
    });
    const refused: string[] = [];
    app.worker.on('error', (err) => refused.push(err.message));
    try {
      const devices = Array.from({ length: DEVICES }, (_, i) => `many-${i}`);
      const job = await notification(w, { devices });
      await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id));
      await until('fan-out under way', async () => {
        const s = await w.status.get(job.id);
        return s?.state === 'sending' && s.counts.targets > 0 ? true : undefined;
      });
      // Another worker holds the lock now (as after a stall past the lock): for 2.5 s, then it
      // "dies" and the stalled check hands the job back.
      const lockKey = `${queueOptions(w.keys).prefix}:${FANOUT_QUEUE}:${job.id}:lock`;
      await redis.set(lockKey, 'another-worker:0', 'PX', 2500);
      const atTakeover = (await w.status.get(job.id))?.counts.targets ?? 0;
      // The fan-out stops: its finish is refused (the lock is not its own).
      await until('the job stopped', () => refused.some((m) => m.includes(`job ${job.id}`)) || undefined);
      const atStop = (await w.status.get(job.id))?.counts.targets ?? 0;
      expect(atStop).toBeLessThanOrEqual(atTakeover + CHUNK);
      expect(atStop).toBeLessThan(DEVICES);
      expect((await w.status.get(job.id))?.state).toBe('sending');

      // Once that lock expires the job is resumed from its saved progress and finishes.
      const sent = await until(
        'status sent',
        async () => {
          const s = await w.status.get(job.id);
          return s?.state === 'sent' ? s : undefined;
        },
        RECOVERY_BOUND_MS,
      );
      const entries = await Promise.all(devices.map((d) => redis.xrange(w.keys.inbox(d).stream, '-', '+')));
      const copies = entries.map((e) => e.filter(([, f]) => f[f.indexOf('i') + 1] === job.id).length);
      expect(copies.filter((n) => n === 0)).toHaveLength(0);
      // Only the chunk in flight when the lock went may come twice.
      expect(copies.filter((n) => n > 1).length).toBeLessThanOrEqual(CHUNK);
      expect(sent.counts.targets).toBeLessThanOrEqual(DEVICES + CHUNK);
    } finally {
      await queue.close();
      await app.close();
    }
  });
});
