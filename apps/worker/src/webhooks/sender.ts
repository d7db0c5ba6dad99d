import type { WebhookEndpoint } from '@herald/config';
import type { DeadLetter, WebhookJob } from '@herald/store';
import { DelayedError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { requestBody } from './body.js';
import { EndpointGate, type GateOptions } from './gate.js';
import { signRequest } from './signer.js';

/** Most endpoint gates kept (one per app endpoint seen); beyond, idle ones are dropped. */
const MAX_GATES = 10_000;
/** Most bytes of an endpoint's answer read (and then dropped): the status is all that counts. */
const MAX_ANSWER_BYTES = 4096;

export interface SenderDeps {
  /** The endpoint of an app by id (from the live apps), undefined once it is removed. */
  endpoint(app: string, id: string): WebhookEndpoint | undefined;
  /** Records a request that exhausted its retries in the app's dead letters. */
  dead(app: string, d: DeadLetter): Promise<void>;
  gate: GateOptions;
  timeoutMs: number;
  log: Logger;
  observer?: SendObserver;
}

export interface SendObserver {
  sent(ok: boolean, events: number, ms: number): void;
  deferred(reason: 'busy' | 'open'): void;
  deadLettered(events: number): void;
}

export class SendFailed extends Error {}

/**
 * Sends one webhook request (a BullMQ job: one endpoint, many events), signed per Standard
 * Webhooks. A non-2xx answer, a timeout or a network error fails the attempt (BullMQ retries
 * with exponential backoff); the last attempt's failure puts the request in the dead letters.
 * An endpoint at its concurrency limit or with an open breaker defers the job without using an
 * attempt (gate.ts).
 */
export class WebhookSender {
  private readonly gates = new Map<string, EndpointGate>();

  constructor(private readonly d: SenderDeps) {}

  gateOf(app: string, endpoint: string): EndpointGate {
    const k = `${app}/${endpoint}`;
    let g = this.gates.get(k);
    if (!g) {
      if (this.gates.size >= MAX_GATES)
        for (const [key, gate] of this.gates)
          if (gate.active === 0 && gate.state === 'closed') this.gates.delete(key);
      g = new EndpointGate(this.d.gate);
      this.gates.set(k, g);
    }
    return g;
  }

  async process(job: Job<WebhookJob>, token?: string): Promise<{ status: number } | { dropped: string }> {
    const { app, endpoint: id, msgId, events } = job.data;
    const endpoint = this.d.endpoint(app, id);
    if (!endpoint) {
      this.d.log.warn({ app, endpoint: id, msgId }, 'webhook endpoint removed: request dropped');
      return { dropped: 'endpoint removed' };
    }
    const gate = this.gateOf(app, id);
    if (!gate.tryAcquire()) {
      this.d.observer?.deferred(gate.state === 'open' ? 'open' : 'busy');
      await job.moveToDelayed(Date.now() + gate.waitMs(), token);
      throw new DelayedError();
    }
    const started = Date.now();
    let error: string | undefined;
    let status = 0;
    try {
      const body = requestBody(events);
      const res = await fetch(endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Herald-Webhooks/1',
          ...signRequest(endpoint.secret, msgId, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.d.timeoutMs),
      });
      status = res.status;
      await drain(res);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      error = e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.message);
    }
    const ms = Date.now() - started;
    gate.done(error === undefined, ms);
    this.d.observer?.sent(error === undefined, events.length, ms);
    if (error === undefined) return { status };
    const attempts = job.opts.attempts ?? 1;
    if (job.attemptsMade + 1 >= attempts) {
      await this.d.dead(app, {
        id: msgId,
        endpoint: id,
        failedAt: Date.now(),
        attempts: job.attemptsMade + 1,
        error,
        events,
      });
      this.d.observer?.deadLettered(events.length);
      this.d.log.warn({ app, endpoint: id, msgId, error, attempts }, 'webhook request dead-lettered');
    }
    throw new SendFailed(error);
  }
}

/** Reads at most MAX_ANSWER_BYTES of an answer and drops the rest (frees the connection). */
async function drain(res: Response): Promise<void> {
  if (!res.body) return;
  const reader = res.body.getReader();
  let n = 0;
  try {
    while (n < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      n += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
