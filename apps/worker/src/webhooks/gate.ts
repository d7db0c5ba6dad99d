/**
 * Per-endpoint admission in one worker process (docs/webhooks.md): at most `concurrency`
 * requests in flight, and a circuit breaker. After `failures` consecutive failed requests the
 * breaker opens and the endpoint is not tried for `cooldownMs`; then one probe request is let
 * through (half-open): its success closes the breaker, its failure opens it again.
 *
 * A request that is not admitted is not sent and not counted as an attempt: its job waits
 * (`waitMs`) in BullMQ's delayed set, so a slow or dead endpoint holds at most `concurrency` of
 * the worker's job slots and never the other endpoints' (one queue for every endpoint, not a
 * queue and a blocking connection per endpoint: the number of endpoints is not bounded by the
 * connections a worker can hold). Measured in test/system/webhooks.test.ts: with an endpoint
 * answering in 5 s per request (4 in flight), another endpoint still got all 1,000 of its events
 * within 1.0-1.7 s of the publishes, while the slow one had got fewer than 1,000.
 */
export interface GateOptions {
  concurrency: number;
  failures: number;
  cooldownMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export class EndpointGate {
  private inFlight = 0;
  private consecutive = 0;
  private openUntil = 0;
  private probing = false;
  /** Recent request duration (ms), an EWMA: how long a busy endpoint's waiting jobs sleep. */
  private avgMs = 100;

  constructor(
    private readonly o: GateOptions,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    if (this.openUntil === 0) return 'closed';
    return this.now() < this.openUntil ? 'open' : 'half-open';
  }

  get active(): number {
    return this.inFlight;
  }

  /** Admits one request (true: call `done` after it), or false when it has to wait. */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === 'open') return false;
    if (state === 'half-open') {
      if (this.probing || this.inFlight > 0) return false;
      this.probing = true;
    } else if (this.inFlight >= this.o.concurrency) return false;
    this.inFlight++;
    return true;
  }

  /** Ends an admitted request. */
  done(ok: boolean, ms: number): void {
    this.inFlight--;
    this.avgMs = this.avgMs * 0.8 + ms * 0.2;
    const wasProbe = this.probing;
    this.probing = false;
    if (ok) {
      this.consecutive = 0;
      this.openUntil = 0;
      return;
    }
    this.consecutive++;
    if (wasProbe || this.consecutive >= this.o.failures) this.openUntil = this.now() + this.o.cooldownMs;
  }

  /**
   * How long a request that was not admitted waits before it asks again: until the breaker's
   * cool-down ends, else about one request's duration (bounded, jittered so waiting jobs do not
   * come back together).
   */
  waitMs(): number {
    const jitter = 0.75 + Math.random() * 0.5;
    if (this.state === 'open') return Math.max(10, this.openUntil - this.now()) + Math.round(50 * jitter);
    return Math.round(Math.min(5000, Math.max(50, this.avgMs)) * jitter);
  }
}
