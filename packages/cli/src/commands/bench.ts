import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { HeraldClient, type WebSocketConstructor } from '@herald/client';
import { isValidTopic, topicStream } from '@herald/protocol';
import WebSocket from 'ws';
import { COMMON_HELP, COMMON_OPTIONS, intFlag, parse, secondsFlag } from '../args.js';
import type { Command } from '../command.js';
import { CliError, HttpError, UsageError } from '../errors.js';
import { Api, type PublishBody } from '../http.js';
import { out } from '../io.js';
import { ProgressBar } from '../progress.js';
import { requireKey, requireSecret, resolveCommon } from '../settings.js';
import { type LatencySummary, ms, summarize } from '../stats.js';
import { mintToken } from '../token.js';

const HELP = `usage: herald bench [-n COUNT] [-c CONCURRENCY] [-m DEVICES] [--mode topic|devices] [--topic T]
                    [--ttl SECONDS] [--timeout SECONDS] [--spread] [--json] [--secret S]

Connects DEVICES devices (with the SDK), then publishes COUNT notifications with CONCURRENCY
requests in flight, and waits until every device got every notification (or the timeout).
Progress goes to stderr; then it prints the accepted publishes per second, the deliveries,
and the publish-to-receipt latency (p50, p90, p99, max: from just before the HTTP request to
the notification reaching a device). Exit 1 if a publish failed or a delivery is missing.

Options:
  -n, --count N          notifications to publish (default 1000)
  -c, --concurrency C    publish requests in flight (default 16)
  -m, --devices M        devices to connect (default 10)
  --mode topic|devices   topic: the devices subscribe to one topic and each notification goes
                         to it; devices: each notification names all M devices (default topic)
  --topic T              the topic (default bench.<run id>)
  --ttl SECONDS          TTL of the notifications (default 300)
  --timeout SECONDS      bound on the whole run (default 60)
  --spread               connect from 127.0.0.2, 127.0.0.3, ... so a balancer that hashes the
                         client address spreads the devices over the nodes (local stacks only)
  --json                 print the result as one JSON object
  --secret S             HS256 secret for the device tokens (default $HERALD_TOKEN_SECRET,
                         else .herald/secrets.json)

${COMMON_HELP}

Example:
  herald bench -n 5000 -c 32 -m 50 --spread`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  count: { type: 'string', short: 'n' },
  concurrency: { type: 'string', short: 'c' },
  devices: { type: 'string', short: 'm' },
  mode: { type: 'string' },
  topic: { type: 'string' },
  ttl: { type: 'string' },
  timeout: { type: 'string' },
  spread: { type: 'boolean' },
  json: { type: 'boolean' },
  secret: { type: 'string' },
} as const;

export interface BenchResult {
  runId: string;
  mode: 'topic' | 'devices';
  topic?: string;
  devices: number;
  count: number;
  concurrency: number;
  published: { accepted: number; failed: number; seconds: number; perSecond: number };
  delivered: { count: number; expected: number; seconds: number; perSecond: number };
  latencyMs: LatencySummary;
  timedOut: boolean;
}

/** Loopback source address i (127.0.0.2, ...), as the system tests use. */
function loopback(i: number): string {
  return `127.0.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}

/** A `ws` WebSocket bound to a given local address. */
function boundSocket(localAddress: string): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { localAddress });
    }
  } as unknown as WebSocketConstructor;
}

class Timeout extends Error {}

export const bench: Command = {
  name: 'bench',
  summary: 'publish N notifications to M connected devices and measure throughput and latency',
  help: HELP,
  async run(args) {
    const { values: v } = parse(args, OPTIONS);
    if (v.help) {
      out(HELP);
      return 0;
    }
    const common = resolveCommon(v);
    const count = intFlag('count', v.count, 1000, 1, 10_000_000);
    const concurrency = intFlag('concurrency', v.concurrency, 16, 1, 1024);
    const deviceCount = intFlag('devices', v.devices, 10, 1, 10_000);
    const ttl = intFlag('ttl', v.ttl, 300, 1, 31_536_000);
    const timeoutS = secondsFlag('timeout', v.timeout, 60);
    const mode = v.mode ?? 'topic';
    if (mode !== 'topic' && mode !== 'devices') throw new UsageError('--mode must be topic or devices');
    const runId = randomBytes(4).toString('hex');
    const topic = v.topic ?? `bench.${runId}`;
    if (!isValidTopic(topic)) throw new UsageError(`--topic ${JSON.stringify(topic)} is not a valid topic`);
    if (v.spread) {
      const host = new URL(common.ws).hostname;
      if (!/^127\.|^localhost$/.test(host))
        throw new UsageError('--spread needs a loopback --ws (127.x or localhost)');
    }
    const key = requireKey(common);
    const secret = requireSecret(common);
    const api = new Api(common.api, key, Math.min(15_000, timeoutS * 1000));
    const bar = new ProgressBar();
    const deadline = Date.now() + timeoutS * 1000;
    const ids = Array.from({ length: deviceCount }, (_, i) => `bench-${runId}-${i}`);
    const expectedPer = deviceCount; // every notification reaches every device, in both modes

    const sentAt = new Float64Array(count);
    const latencies: number[] = [];
    let accepted = 0;
    let failed = 0;
    let delivered = 0;
    let lastReceipt = 0;
    let fatal: Error | undefined;
    let wake: () => void = () => undefined;

    // ---- connect ----
    const clients: HeraldClient[] = [];
    let ready = 0;
    const connectAll = ids.map(async (device, i) => {
      const client = new HeraldClient({
        url: common.ws,
        token: () => mintToken({ secret, device, user: device, expires: '1h' }),
        ...(mode === 'topic' ? { topics: [topic] } : {}),
        ...(v.spread ? { WebSocket: boundSocket(loopback(i)) } : {}),
      });
      clients.push(client);
      client.on('notification', (n) => {
        const d = n.data as { bench?: unknown; i?: unknown } | null;
        if (!d || d.bench !== runId || typeof d.i !== 'number') return;
        const now = performance.now();
        latencies.push(now - sentAt[d.i]!);
        delivered++;
        lastReceipt = now;
        wake();
      });
      const subscribed =
        mode === 'topic'
          ? new Promise<void>((resolve) => {
              const stream = topicStream(topic);
              client.on('subscribed', (s) => s.topic === topic && resolve());
              client.on('welcome', (w) => stream in w.streams && resolve());
            })
          : Promise.resolve();
      await client.connect();
      await subscribed;
      ready++;
      bar.update(ready / deviceCount, `connected ${ready}/${deviceCount} devices`);
    });
    const failedConnect = new Promise<never>((_, reject) => {
      for (const c of clients)
        c.on('error', (e) => {
          if (e.fatal) reject(new CliError(`a bench device could not connect: ${e.code}: ${e.message}`));
        });
    });
    failedConnect.catch(() => undefined);

    const closeAll = async () => {
      bar.done();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled(clients.map((c) => c.close())),
        new Promise((r) => {
          timer = setTimeout(r, 5000);
        }),
      ]);
      clearTimeout(timer);
    };

    let connectTimer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        Promise.all(connectAll),
        failedConnect,
        new Promise<never>((_, reject) => {
          connectTimer = setTimeout(() => reject(new Timeout()), Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(connectTimer);
    } catch (err) {
      clearTimeout(connectTimer);
      await closeAll();
      if (err instanceof Timeout)
        throw new CliError(
          `timed out after ${timeoutS} s with ${ready} of ${deviceCount} devices connected to ${common.ws}`,
        );
      throw err;
    }

    // ---- publish, while receiving ----
    const to: PublishBody['to'] = mode === 'topic' ? { topic } : { devices: ids };
    let next = 0;
    const progress = () =>
      bar.update(
        delivered / (count * expectedPer),
        `published ${accepted + failed}/${count}, delivered ${delivered}/${count * expectedPer}`,
      );
    const publishStart = performance.now();
    let publishEnd = publishStart;
    const worker = async () => {
      while (next < count && fatal === undefined && Date.now() < deadline) {
        const i = next++;
        sentAt[i] = performance.now();
        try {
          await api.publish({ to, data: { bench: runId, i }, ttl });
          accepted++;
        } catch (err) {
          failed++;
          // A 4xx will fail every time (bad key, bad topic): stop instead of repeating it.
          if (err instanceof HttpError && err.status < 500) fatal = err;
          else if (!(err instanceof HttpError) && accepted === 0) fatal = err as Error;
        }
        publishEnd = performance.now();
        progress();
      }
    };
    const ticker = setInterval(progress, 200);
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));

    // ---- wait for the deliveries ----
    let timedOut = false;
    while (fatal === undefined && delivered < accepted * expectedPer) {
      const left = deadline - Date.now();
      if (left <= 0) {
        timedOut = true;
        break;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      progress();
    }
    if (accepted + failed < count && fatal === undefined) timedOut = true;
    clearInterval(ticker);
    await closeAll();
    if (fatal) throw fatal;

    const publishS = (publishEnd - publishStart) / 1000;
    const deliverS = ((lastReceipt || publishEnd) - publishStart) / 1000;
    const result: BenchResult = {
      runId,
      mode,
      ...(mode === 'topic' ? { topic } : {}),
      devices: deviceCount,
      count,
      concurrency,
      published: {
        accepted,
        failed,
        seconds: round(publishS, 3),
        perSecond: round(publishS > 0 ? accepted / publishS : 0, 1),
      },
      delivered: {
        count: delivered,
        expected: accepted * expectedPer,
        seconds: round(deliverS, 3),
        perSecond: round(deliverS > 0 ? delivered / deliverS : 0, 1),
      },
      latencyMs: roundLatency(summarize(latencies)),
      timedOut,
    };
    if (v.json) out(JSON.stringify(result));
    else out(report(result, common.ws));
    if (timedOut)
      throw new CliError(
        `bench timed out after ${timeoutS} s: published ${accepted + failed} of ${count}, delivered ${delivered} of ${accepted * expectedPer}`,
      );
    if (failed > 0) throw new CliError(`${failed} publishes failed`);
    if (delivered < accepted * expectedPer) throw new CliError('some notifications were not delivered');
    return 0;
  },
};

function round(x: number, digits: number): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function roundLatency(l: LatencySummary): LatencySummary {
  return {
    count: l.count,
    p50: round(l.p50, 2),
    p90: round(l.p90, 2),
    p99: round(l.p99, 2),
    max: round(l.max, 2),
  };
}

export function report(r: BenchResult, ws: string): string {
  const target = r.mode === 'topic' ? `topic ${r.topic}` : `all ${r.devices} devices by id`;
  return [
    `bench ${r.runId}: ${r.count} notifications to ${target}, ${r.devices} devices on ${ws}, concurrency ${r.concurrency}`,
    `published   ${r.published.accepted} accepted, ${r.published.failed} failed in ${r.published.seconds.toFixed(2)} s: ${r.published.perSecond} accepted/s`,
    `delivered   ${r.delivered.count} of ${r.delivered.expected} in ${r.delivered.seconds.toFixed(2)} s: ${r.delivered.perSecond} deliveries/s`,
    `latency     publish to receipt: p50 ${ms(r.latencyMs.p50)}, p90 ${ms(r.latencyMs.p90)}, p99 ${ms(r.latencyMs.p99)}, max ${ms(r.latencyMs.max)}`,
  ].join('\n');
}
