/**
 * What HERALD_REDIS_MIN_REPLICAS costs: single-device and batch publishes per second on Redis
 * Sentinel (1 master, 1 replica, 3 sentinels, all on this machine) with 0 and with 1. The bench
 * harness (run.ts) starts Herald on one Redis or a Cluster only, hence this small script.
 *
 *   node bench/dist/replicas.js [--count 4000] [--window 64] [--batch 100] [--batch-window 8] [--rounds 2]
 *
 * Each setting gets a fresh Sentinel and stack; per round, `count` single-device publishes
 * (`window` in flight, one device each of 1,000: the API's direct path, one script call) and
 * `count` notifications as batches of `batch` (`batch-window` requests in flight). Every
 * answer must be a 202; the best round is printed (the first warms the JIT).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startRedisSentinel, startStack } from '@herald/stack';
import { Histogram } from './histogram.js';
import { HttpPublisher, runWindowed } from './publisher.js';
import { API_KEY, TOKEN_SECRET } from './systems.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '4000' },
    window: { type: 'string', default: '64' },
    batch: { type: 'string', default: '100' },
    'batch-window': { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    settings: { type: 'string', default: '0,1' },
  },
});
function int(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
}
const count = int('count', values.count, 100, 1_000_000);
const window = int('window', values.window, 1, 1024);
const batch = int('batch', values.batch, 1, 500);
const batchWindow = int('batch-window', values['batch-window'], 1, 256);
const rounds = int('rounds', values.rounds, 1, 10);
const settings = (values.settings ?? '').split(',').map((s) => int('settings', s, 0, 1));

const headers = { authorization: `Bearer ${API_KEY}` };
const body = (i: number) => `{"to":{"devices":["rd-${i % 1000}"]},"data":{"i":${i}}}`;

interface Round {
  perS: number;
  p50: number | null;
  p99: number | null;
}

async function measure(
  pub: HttpPublisher,
  requests: number,
  w: number,
  send: (i: number) => Promise<number>,
  perRequest: number,
): Promise<Round> {
  const hist = new Histogram();
  const t0 = performance.now();
  await runWindowed(requests, w, async (i) => {
    const s = performance.now();
    const status = await send(i);
    hist.record(performance.now() - s);
    if (status !== 202) throw new Error(`answered ${status} (${pub.lastError})`);
  });
  const seconds = (performance.now() - t0) / 1000;
  const { p50, p99 } = hist.summary();
  return { perS: Math.round((requests * perRequest) / seconds), p50, p99 };
}

async function one(min: number): Promise<{ single: Round; batch: Round }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-replicas-bench-'));
  const sentinel = await startRedisSentinel({ dir: path.join(dir, 'redis') });
  try {
    const stack = await startStack({
      redisUrl: sentinel.url,
      nodes: 1,
      dataDir: path.join(dir, 'herald'),
      logDir: path.join(dir, 'logs'),
      apiKeys: [API_KEY],
      tokenSecret: TOKEN_SECRET,
      logLevel: 'warn',
      env: { HERALD_REDIS_MIN_REPLICAS: String(min) },
    });
    try {
      const pub = new HttpPublisher(Math.max(window, batchWindow));
      const url = `${stack.apiUrl}/v1/notifications`;
      let best: { single: Round; batch: Round } | undefined;
      for (let r = 0; r < rounds; r++) {
        const single = await measure(pub, count, window, (i) => pub.post(url, body(i), headers), 1);
        const b = await measure(
          pub,
          Math.ceil(count / batch),
          batchWindow,
          (k) => {
            const items = Array.from({ length: batch }, (_, j) => body(k * batch + j)).join(',');
            return pub.post(`${url}/batch`, `{"notifications":[${items}]}`, headers);
          },
          batch,
        );
        if (!best || single.perS > best.single.perS) best = { single, batch: best?.batch ?? b };
        if (b.perS > best.batch.perS) best.batch = b;
      }
      return best!;
    } finally {
      await stack.stop();
    }
  } finally {
    await sentinel.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const rows: string[] = [];
for (const min of settings) {
  const r = await one(min);
  rows.push(
    `| ${min} | ${r.single.perS} | ${r.single.p50} / ${r.single.p99} | ${r.batch.perS} | ${r.batch.p50} / ${r.batch.p99} |`,
  );
}
console.log(
  `\nSentinel (1 master, 1 replica), ${os.cpus().length} CPUs, ${count} publishes per kind, single window ${window}, batches of ${batch} (window ${batchWindow}), best of ${rounds}\n`,
);
console.log(
  '| HERALD_REDIS_MIN_REPLICAS | single/s | single p50 / p99 ms | batch notifications/s | batch request p50 / p99 ms |',
);
console.log('| --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
