import { Counter, Histogram, type Registry } from 'prom-client';
import type { WebPushObserver } from './processor.js';
import type { PushOutcome } from './sender.js';

const RESULTS: PushOutcome['result'][] = ['sent', 'gone', 'retry', 'failed'];

/** The fallback's metrics, in the worker's registry (docs/webpush.md). */
export class WebPushMetrics implements WebPushObserver {
  readonly sentTotal: Counter<'result'>;
  readonly latency: Histogram;
  readonly redis: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.sentTotal = new Counter({
      name: 'herald_webpush_sent_total',
      help: 'Web Push requests by result: sent (2xx), gone (404/410: subscription removed), retry (429, 5xx, no answer: scheduled again), failed (other 4xx, bad keys).',
      labelNames: ['result'],
      registers,
    });
    for (const result of RESULTS) this.sentTotal.inc({ result }, 0);
    this.latency = new Histogram({
      name: 'herald_webpush_request_duration_seconds',
      help: 'Time a push service took to answer one Web Push request (encryption included).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.redis = new Counter({
      name: 'herald_webpush_redis_calls_total',
      help: 'Redis round trips of Web Push checks: one script call per chunk of devices, plus one SSCAN per batch of topic members.',
      registers,
    });
  }

  sent(result: PushOutcome['result'], seconds: number): void {
    this.sentTotal.inc({ result });
    this.latency.observe(seconds);
  }

  redisCalls(n: number): void {
    this.redis.inc(n);
  }
}
