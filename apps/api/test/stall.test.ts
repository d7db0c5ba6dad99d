import type { AddressInfo } from 'node:net';
import { type RedisHandle, startRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createRedis, Keys, StatusStore } from '@herald/store';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type HeraldApi } from '../src/app.js';
import { auth, captureLogger, inspectQueue, ready, testConfig } from './helpers.js';

// Redis stopped with SIGSTOP keeps its sockets open: no command fails on its own, so only the
// request deadline (HERALD_REDIS_TIMEOUT_MS, default 1000 ms) answers. Issue #12 measured 503s
// after up to 6.0 s and 202s after up to 4 s here before the deadline existed.
const PREFIX = 'stall';
const DEADLINE_MS = 1000; // the default, not set below
/**
 * Room for HTTP, the event loop and a loaded CI machine on top of the deadline: 300 ms was missed
 * once by 36 ms (a batch at 1,336 ms) at load average 20; without the deadline answers took up
 * to 6 s, which this still tells apart.
 */
const SLACK_MS = 600;
const STALL_MS = 2500;
const PUBLISHERS = 4;

let srv: RedisHandle;
let redis: Redis;
let queueRedis: Redis;
let check: Redis;
let app: HeraldApi;
let base: string;
let queue: Queue;
let stopped = false;
const logs = captureLogger();

beforeAll(async () => {
  srv = await startRedis({ appendonly: false });
  const config = testConfig(srv.url, PREFIX);
  expect(config.redisTimeoutMs).toBe(DEADLINE_MS);
  const tuning = { commandTimeout: config.redisTimeoutMs };
  redis = createRedis(srv.url, 'request', 'stall-test', tuning);
  queueRedis = createRedis(srv.url, 'request', 'stall-test-queue', tuning);
  check = createRedis(srv.url, 'background', 'stall-check');
  app = buildApp({ config, redis, queueRedis, loggerInstance: logs.logger });
  await Promise.all([ready(redis), ready(queueRedis), ready(check)]);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  queue = inspectQueue(check, PREFIX);
});

afterAll(async () => {
  if (stopped && srv) process.kill(srv.pid, 'SIGCONT');
  await app?.close();
  await queue?.close();
  for (const c of [redis, queueRedis, check]) c?.disconnect();
  await srv?.stop();
});

interface Sent {
  key: string;
  body: { to: { devices: string[] } | { users: string[] }; data: unknown };
  status: number;
  ms: number;
  json: { id?: string; code?: string; message?: string };
  retryAfter: string | null;
}

async function publish(key: string, body: Sent['body']): Promise<Sent> {
  const t0 = Date.now();
  const res = await fetch(`${base}/v1/notifications`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Sent['json'];
  return {
    key,
    body,
    status: res.status,
    ms: Date.now() - t0,
    json,
    retryAfter: res.headers.get('retry-after'),
  };
}

/** Publishes one after another until `running()` is false: direct (one device) and queued (a user). */
async function publisher(p: number, running: () => boolean, out: Sent[]): Promise<void> {
  for (let i = 0; running(); i++) {
    const body: Sent['body'] =
      i % 2 === 0
        ? { to: { devices: [`dev-${p}`] }, data: { p, i } }
        : { to: { users: [`user-${p}`] }, data: { p, i } };
    out.push(await publish(`p${p}-${i}`, body));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface BatchSent {
  devices: string[];
  status: number;
  ms: number;
  results: ({ id: string; status: string } | { code: string; message: string })[];
}

/** Batches of 20 direct publishes, one after another: each item is bounded, not the batch. */
async function batcher(running: () => boolean, out: BatchSent[]): Promise<void> {
  for (let i = 0; running(); i++) {
    const devices = Array.from({ length: 20 }, (_, k) => `bdev-${i}-${k}`);
    const t0 = Date.now();
    const res = await fetch(`${base}/v1/notifications/batch`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ notifications: devices.map((d) => ({ to: { devices: [d] }, data: { i } })) }),
    });
    const json = (await res.json()) as { results?: BatchSent['results'] };
    out.push({ devices, status: res.status, ms: Date.now() - t0, results: json.results ?? [] });
  }
}

/**
 * What a client does with a 503 or a 409 in progress (docs/api.md): wait Retry-After, send the
 * same request again (at most 5 times).
 */
async function retry(s: Sent): Promise<Sent> {
  let last = s;
  const again = (r: Sent) =>
    r.status === 503 || (r.status === 409 && r.json.code === 'HERALD_IDEMPOTENCY_IN_PROGRESS');
  for (let attempt = 0; attempt < 5 && again(last); attempt++) {
    await sleep(Number(last.retryAfter) * 1000);
    last = await publish(s.key, s.body);
  }
  return last;
}

/** True once `id` is durably there: in the device's inbox, or queued as a job with its status. */
async function exists(s: Sent, id: string): Promise<boolean> {
  const keys = new Keys(PREFIX);
  if ('devices' in s.body.to) {
    const inbox = await check.xrange(keys.inbox(s.body.to.devices[0] as string).stream, '-', '+');
    return inbox.some(([, f]) => f[f.indexOf('i') + 1] === id);
  }
  const status = await new StatusStore(check, keys, 60_000).get(id);
  return status?.state === 'queued' && (await queue.getJob(id)) !== undefined;
}

describe('Redis stalled (SIGSTOP) under concurrent publishers', () => {
  it('answers every request within the deadline, and loses nothing it accepted', async () => {
    const sent: Sent[] = [];
    const batches: BatchSent[] = [];
    let running = true;
    const loops = Array.from({ length: PUBLISHERS }, (_, p) => publisher(p, () => running, sent));
    loops.push(batcher(() => running, batches));
    try {
      await sleep(300);
      process.kill(srv.pid, 'SIGSTOP');
      stopped = true;
      await sleep(STALL_MS);
      process.kill(srv.pid, 'SIGCONT');
      stopped = false;
      await sleep(500);
    } finally {
      running = false;
      await Promise.all(loops);
    }

    // A batch is bounded per item: within the same bound, a 202, a 207 naming the failed items, or
    // a 503 when every item failed; every item it calls accepted is in its device's inbox.
    expect(batches.length).toBeGreaterThan(2);
    for (const b of batches) {
      expect(b.ms, `batch answered after ${b.ms} ms`).toBeLessThan(DEADLINE_MS + SLACK_MS);
      expect([202, 207, 503]).toContain(b.status);
      if (b.status === 503) continue;
      for (const [k, r] of b.results.entries()) {
        if (!('id' in r)) continue;
        const inbox = await check.xrange(new Keys(PREFIX).inbox(b.devices[k] as string).stream, '-', '+');
        expect(inbox.some(([, f]) => f[f.indexOf('i') + 1] === r.id)).toBe(true);
      }
    }
    expect(batches.some((b) => b.status === 503 || b.status === 207)).toBe(true);

    const slowest = Math.max(...sent.map((s) => s.ms));
    expect(slowest, `slowest answer ${slowest} ms`).toBeLessThan(DEADLINE_MS + SLACK_MS);
    for (const s of sent) {
      expect([202, 503]).toContain(s.status);
      if (s.status === 503) {
        expect(s.json).toEqual({
          code: 'HERALD_REDIS_UNAVAILABLE',
          message: 'Redis is unavailable; retry later',
        });
        expect(s.retryAfter).toBe('1');
      }
    }
    const refused = sent.filter((s) => s.status === 503);
    const accepted = sent.filter((s) => s.status === 202);
    // Every publisher met the stall at least once, and publishing worked before and after it.
    expect(refused.length).toBeGreaterThanOrEqual(PUBLISHERS);
    expect(accepted.length).toBeGreaterThan(PUBLISHERS);
    expect(sent.at(-1)?.status).toBe(202);

    // Nothing accepted is lost: every 202's notification is in Redis once it runs again.
    for (const s of accepted) expect(await exists(s, s.json.id as string), s.key).toBe(true);

    // A client retries its 503s with the same Idempotency-Key, after Retry-After: each becomes
    // a 202 and its notification exists. A 503'd request may have taken effect when Redis
    // resumed: the retry then answers that id, so nothing is published twice. One whose key was
    // claimed but not finished is completed by a later request, so a retry may meet one more 503.
    const retried = await Promise.all(refused.map((s) => retry(s)));
    for (const [i, again] of retried.entries()) {
      const s = refused[i] as Sent;
      expect(again.status, s.key).toBe(202);
      expect(await exists(s, again.json.id as string), s.key).toBe(true);
    }
  });
});
