import Type from 'typebox';

/** Settings of webhooks (docs/webhooks.md), spread into the API's and the worker's schemas (settings.ts). */
const Int = (def: number, min: number, max: number, description: string) =>
  Type.Integer({ default: def, minimum: min, maximum: max, description });

/** Webhook delivery (docs/webhooks.md): the worker sends, the API replays dead letters with the same retries. */
export const webhookRetries = {
  HERALD_WEBHOOK_MAX_ATTEMPTS: Int(
    14,
    1,
    50,
    'Sends of one webhook request before it goes to the dead-letter list (answers other than 2xx, timeouts, refused connections).',
  ),
  HERALD_WEBHOOK_RETRY_MS: Int(
    5000,
    10,
    3_600_000,
    'First retry delay of a webhook request, doubling each attempt: the defaults retry for about 11 hours (5 s x (2^13 - 1)).',
  ),
};

/** The worker's sending of webhook requests. */
export const webhookWorker = {
  HERALD_WEBHOOK_CONCURRENCY: Int(
    64,
    1,
    1024,
    'Webhook requests in flight per worker process, all endpoints.',
  ),
  HERALD_WEBHOOK_ENDPOINT_CONCURRENCY: Int(
    4,
    1,
    256,
    'Webhook requests in flight per endpoint per worker process: a slow endpoint holds at most this many of HERALD_WEBHOOK_CONCURRENCY.',
  ),
  HERALD_WEBHOOK_TIMEOUT_MS: Int(10_000, 100, 120_000, 'Longest an endpoint may take to answer one request.'),
  HERALD_WEBHOOK_BATCH: Int(100, 1, 1000, 'Most events in one webhook request.'),
  HERALD_WEBHOOK_BREAKER_FAILURES: Int(
    5,
    1,
    1000,
    'Consecutive failed requests after which an endpoint is not tried for HERALD_WEBHOOK_BREAKER_COOLDOWN_MS (circuit breaker; then one probe).',
  ),
  HERALD_WEBHOOK_BREAKER_COOLDOWN_MS: Int(
    30_000,
    10,
    3_600_000,
    'How long an endpoint whose breaker opened is left alone before one probe request.',
  ),
  HERALD_WEBHOOK_DEAD_MAX: Int(
    10_000,
    1,
    1_000_000,
    'Dead-letter requests kept per app (the oldest are dropped above).',
  ),
};
