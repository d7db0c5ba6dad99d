import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type AppHandle,
  appScript,
  ManagedProcess,
  type RedisHandle,
  startApi,
  startRedis,
} from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY } from './helpers.js';

// Runs the built entry point, as production does: `npm run build` (turbo does) comes first.
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-api-main-'));
let srv: RedisHandle;
let api: AppHandle | undefined;

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
});

afterAll(async () => {
  await api?.stop('SIGKILL');
  await srv?.stop();
  fs.rmSync(logDir, { recursive: true, force: true });
});

/** Runs main.js with only `env` (plus PATH) and returns its exit code and output. */
async function runWith(env: Record<string, string>, name: string) {
  const proc = await ManagedProcess.start({
    command: process.execPath,
    args: [appScript('api')],
    env: { PATH: process.env.PATH ?? '', ...env },
    inheritEnv: false,
    logFile: path.join(logDir, `${name}.log`),
  });
  const code = await Promise.race([
    proc.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('main.js did not exit')), 10_000)),
  ]);
  return { code, log: proc.logTail() };
}

describe('main.js', () => {
  it('prints every configuration problem and exits 1', async () => {
    const missing = await runWith({}, 'missing');
    expect(missing.code).toBe(1);
    expect(missing.log).toContain('REDIS_URL is required');
    expect(missing.log).toContain('HERALD_API_KEYS is required');

    const short = await runWith(
      {
        REDIS_URL: srv.url,
        HERALD_API_KEYS: `${KEY},short`,
        HERALD_TTL_DEFAULT_S: '100',
        HERALD_TTL_MAX_S: '10',
      },
      'short',
    );
    expect(short.code).toBe(1);
    expect(short.log).toContain('each key must be at least 16 characters');
    expect(short.log).toContain('HERALD_TTL_DEFAULT_S (100) must not exceed HERALD_TTL_MAX_S (10)');
    expect(short.log).not.toContain(KEY);
  });

  it('serves over HTTP and exits 0 on SIGTERM', async () => {
    api = await startApi({ redisUrl: srv.url, apiKeys: [KEY], logDir });
    const res = await fetch(`${api.url}/v1/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: { broadcast: true }, data: { hello: 'world' } }),
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { status: string }).status).toBe('queued');

    await api.stop('SIGTERM', 5000);
    expect(api.process.exitCode).toBe(0);
    const log = fs.readFileSync(api.logFile, 'utf8');
    expect(log).toContain('"msg":"stopped"');
    expect(log).not.toContain(KEY);
  });
});
