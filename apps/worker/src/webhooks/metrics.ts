import { Counter, Histogram, type Registry } from 'prom-client';
import type { SendObserver } from './sender.js';

/** Webhook delivery metrics, in the worker's registry (docs/webhooks.md). */
export class WebhookMetrics implements SendObserver {
  readonly requests: Counter<'result'>;
  readonly events: Counter;
  readonly deferrals: Counter<'reason'>;
  readonly dead: Counter;
  readonly latency: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'herald_webhook_requests_total',
      help: 'Webhook requests sent, by result: ok (2xx) or failed (other answers, timeouts, network errors: retried with backoff).',
      labelNames: ['result'],
      registers,
    });
    this.events = new Counter({
      name: 'herald_webhook_events_sent_total',
      help: 'Webhook events in requests answered 2xx.',
      registers,
    });
    this.deferrals = new Counter({
      name: 'herald_webhook_deferred_total',
      help: 'Webhook requests put back without an attempt: busy (the endpoint is at HERALD_WEBHOOK_ENDPOINT_CONCURRENCY) or open (its circuit breaker is open).',
      labelNames: ['reason'],
      registers,
    });
    this.dead = new Counter({
      name: 'herald_webhook_dead_letters_total',
      help: 'Webhook requests that exhausted HERALD_WEBHOOK_MAX_ATTEMPTS and went to the dead letters.',
      registers,
    });
    this.latency = new Histogram({
      name: 'herald_webhook_request_duration_seconds',
      help: 'Time an endpoint took to answer one webhook request.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    for (const result of ['ok', 'failed']) this.requests.inc({ result }, 0);
    for (const reason of ['busy', 'open']) this.deferrals.inc({ reason }, 0);
  }

  sent(ok: boolean, events: number, ms: number): void {
    this.requests.inc({ result: ok ? 'ok' : 'failed' });
    if (ok) this.events.inc(events);
    this.latency.observe(ms / 1000);
  }

  deferred(reason: 'busy' | 'open'): void {
    this.deferrals.inc({ reason });
  }

  deadLettered(): void {
    this.dead.inc();
  }
}
