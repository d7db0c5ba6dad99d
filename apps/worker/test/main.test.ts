import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FanoutJob } from '@herald/protocol';
import { FANOUT_JOB, FANOUT_QUEUE, fanoutJobOptions, queueOptions } from '@herald/store';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notification, startRedis, type TestRedis, until, world } from './helpers.js';

// The built entry point, as production runs it (turbo builds before it tests).
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

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
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  redis?.disconnect();
  await server?.stop();
});

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (b: Buffer) => {
    out.stdout += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out.stderr += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exited };
}

describe('main', () => {
  it('exits 1 with a readable message on bad configuration', async () => {
    const { out, exited } = run({ HERALD_WORKER_CONCURRENCY: 'lots' });
    expect(await exited).toBe(1);
    expect(out.stderr).toMatch(/invalid configuration/);
    expect(out.stderr).toMatch(/REDIS_URL is required/);
    expect(out.stderr).toMatch(/HERALD_WORKER_CONCURRENCY/);
    expect(out.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it('processes jobs, then on SIGTERM finishes and exits 0', async () => {
    const { child, out, exited } = run({
      REDIS_URL: server.url,
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: '0',
      HERALD_REDIS_PREFIX: 'main',
    });
    await until('worker started', () => /fan-out worker started/.test(out.stdout), 10_000);
    const w = world(redis, 'main');
    const queue = new Queue<FanoutJob>(FANOUT_QUEUE, {
      connection: new Redis(server.url),
      ...queueOptions(w.keys),
    });
    try {
      const job = await notification(w, { topic: 'news' });
      await queue.add(FANOUT_JOB, job, fanoutJobOptions(job.id));
      await until('status sent', async () =>
        (await w.status.get(job.id))?.state === 'sent' ? true : undefined,
      );
      expect(await w.streams.head(w.keys.topic('news'))).toBe(1);
    } finally {
      await queue.close();
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out.stdout).toMatch(/"outcome":"closed","msg":"stopped"/);
  });
});
