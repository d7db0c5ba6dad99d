import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type AppHandle,
  appScript,
  ManagedProcess,
  metric,
  parseMetrics,
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
        HERALD_REDIS_MIN_REPLICAS: '1',
        HERALD_REDIS_REPLICA_TIMEOUT_MS: '1000',
      },
      'short',
    );
    expect(short.code).toBe(1);
    expect(short.log).toContain('each key must be at least 16 characters');
    expect(short.log).toContain('HERALD_TTL_DEFAULT_S (100) must not exceed HERALD_TTL_MAX_S (10)');
    expect(short.log).toContain(
      'HERALD_REDIS_REPLICA_TIMEOUT_MS (1000) must be less than HERALD_REDIS_TIMEOUT_MS (1000)',
    );
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
    // An immediate broadcast is appended by the API itself (direct publish).
    expect(((await res.json()) as { status: string }).status).toBe('sent');

    await api.stop('SIGTERM', 5000);
    expect(api.process.exitCode).toBe(0);
    const log = fs.readFileSync(api.logFile, 'utf8');
    expect(log).toContain('"msg":"stopped"');
    expect(log).not.toContain(KEY);
  });

  it('logs JSON lines with request id and client address, never an API key; serves /metrics', async () => {
    const wrong = 'wrong-key-abcdefghijklmnop';
    const proc = await startApi({
      name: 'api-logs',
      redisUrl: srv.url,
      apiKeys: [KEY],
      logDir,
      logLevel: 'trace',
      env: { HERALD_TRUST_PROXY: 'loopback' },
    });
    try {
      const call = (path: string, init: RequestInit = {}) =>
        fetch(`${proc.url}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
      const post = (key: string, headers: Record<string, string> = {}) =>
        call('/v1/notifications', {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ to: { devices: ['d1'] }, data: { n: 1 } }),
        });
      const ok = await post(KEY, { 'x-request-id': 'main-log-1', 'x-forwarded-for': '203.0.113.9' });
      expect(ok.status).toBe(202);
      expect(ok.headers.get('x-request-id')).toBe('main-log-1');
      const denied = await post(wrong);
      expect(denied.status).toBe(401);
      const generated = denied.headers.get('x-request-id');
      expect(generated).toMatch(/^[0-9a-f-]{36}$/);
      expect((await post(`${KEY}x`, { 'idempotency-key': 'main-log-idem' })).status).toBe(401);

      const metrics = await call('/metrics');
      expect(metrics.status).toBe(200);
      const m = parseMetrics(await metrics.text());
      expect(
        metric(m, 'herald_notifications_published_total', {
          target: 'devices',
          scheduled: 'false',
          path: 'direct',
        }),
      ).toBe(1);
      expect(metric(m, 'herald_publish_rejected_total', { code: 'HERALD_UNAUTHORIZED', app: 'api' })).toBe(2);
      expect(metric(m, 'nodejs_eventloop_lag_seconds', { app: 'api' })).toBeGreaterThanOrEqual(0);
    } finally {
      await proc.stop('SIGTERM', 5000);
    }
    const log = fs.readFileSync(proc.logFile, 'utf8');
    expect(log).not.toContain(KEY);
    expect(log).not.toContain(wrong);
    const lines = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const first = lines.filter((l) => l.reqId === 'main-log-1');
    expect(first.map((l) => l.msg)).toEqual(['incoming request', 'request completed']);
    // Behind a trusted proxy (loopback), the client address is the forwarded one.
    for (const l of first) expect(l.ip).toBe('203.0.113.9');
    const requestLines = lines.filter((l) => l.req || l.res);
    expect(requestLines.length).toBeGreaterThanOrEqual(8);
    for (const l of requestLines) {
      expect(l.reqId, JSON.stringify(l)).toEqual(expect.any(String));
      expect(l.ip, JSON.stringify(l)).toEqual(expect.any(String));
    }
    expect(log).toContain('"idempotencyKey":"main-log-idem"');
    expect(log).toContain('"msg":"stopped"');
  });
});
