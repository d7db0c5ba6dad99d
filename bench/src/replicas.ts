/**
 * What HERALD_REDIS_MIN_REPLICAS costs: single-device and batch publishes per second on Redis
 * Sentinel (1 master, 1 replica, 3 sentinels, all on this machine) with 0 and with 1. The bench
 * harness (run.ts) starts Herald on one Redis or a Cluster only, hence this small script.
 *
 *   node bench/dist/replicas.js [--count 4000] [--window 64] [--batch 100] [--batch-window 8] [--rounds 5]
 *
 * One Sentinel, one stack per setting (side by side); per round and setting, `count` single-device publishes
 * (`window` in flight, one device each of 1,000: the API's direct path, one script call) and
 * `count` notifications as batches of `batch` (`batch-window` requests in flight). Every
 * answer must be a 202. Rounds alternate between the settings; the median round is printed.
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
    rounds: { type: 'string', default: '5' },
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

function median(rs: Round[]): Round {
  const sorted = [...rs].sort((x, y) => x.perS - y.perS);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** A stack (API, worker, one node) on the shared Sentinel with HERALD_REDIS_MIN_REPLICAS=min. */
async function stackFor(sentinelUrl: string, dir: string, min: number) {
  return startStack({
    redisUrl: sentinelUrl,
    nodes: 1,
    dataDir: path.join(dir, `herald-${min}`),
    logDir: path.join(dir, `logs-${min}`),
    apiKeys: [API_KEY],
    tokenSecret: TOKEN_SECRET,
    logLevel: 'warn',
    env: { HERALD_REDIS_MIN_REPLICAS: String(min) },
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-replicas-bench-'));
const sentinel = await startRedisSentinel({ dir: path.join(dir, 'redis') });
const results = new Map<number, { single: Round[]; batch: Round[] }>();
try {
  // Both settings run side by side on one Sentinel, their rounds interleaved, so a machine
  // busy with something else slows both alike; the median round of each is reported.
  const stacks = [];
  for (const min of settings) stacks.push({ min, stack: await stackFor(sentinel.url, dir, min) });
  try {
    const pub = new HttpPublisher(Math.max(window, batchWindow));
    for (let r = 0; r < rounds; r++) {
      for (const { min, stack } of stacks) {
        const url = `${stack.apiUrl}/v1/notifications`;
        const res = results.get(min) ?? { single: [], batch: [] };
        results.set(min, res);
        res.single.push(await measure(pub, count, window, (i) => pub.post(url, body(i), headers), 1));
        res.batch.push(
          await measure(
            pub,
            Math.ceil(count / batch),
            batchWindow,
            (k) => {
              const items = Array.from({ length: batch }, (_, j) => body(k * batch + j)).join(',');
              return pub.post(`${url}/batch`, `{"notifications":[${items}]}`, headers);
            },
            batch,
          ),
        );
      }
    }
  } finally {
    await Promise.allSettled(stacks.map(({ stack }) => stack.stop()));
  }
} finally {
  await sentinel.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

const load = os.loadavg()[0]!.toFixed(1);
console.log(
  `\nSentinel (1 master, 1 replica), ${os.cpus().length} CPUs (load average ${load} at the end), ${count} publishes per kind and round, single window ${window}, batches of ${batch} (window ${batchWindow}), median of ${rounds} interleaved rounds\n`,
);
console.log(
  '| HERALD_REDIS_MIN_REPLICAS | single/s | single p50 / p99 ms | batch notifications/s | batch request p50 / p99 ms | single/s per round | batch/s per round |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const [min, r] of results) {
  const s1 = median(r.single);
  const b1 = median(r.batch);
  console.log(
    `| ${min} | ${s1.perS} | ${s1.p50} / ${s1.p99} | ${b1.perS} | ${b1.p50} / ${b1.p99} | ${r.single.map((x) => x.perS).join(', ')} | ${r.batch.map((x) => x.perS).join(', ')} |`,
  );
}
