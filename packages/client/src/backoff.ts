export interface BackoffOptions {
  /** Ceiling of the first delay, in ms. Default 250. */
  initialMs?: number;
  /** Largest ceiling, in ms. Default 30000. */
  maxMs?: number;
  /** Source of randomness in [0, 1); `Math.random` by default (tests pass a fixed one). */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: the delay of attempt n (from 0) is drawn uniformly from
 * [0, min(maxMs, initialMs * 2^n)). Full jitter spreads a crowd of clients that lost the same
 * node over the whole window, so they do not come back in waves.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  private readonly random: () => number;
  private n = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = Math.max(0, opts.initialMs ?? 250);
    this.maxMs = Math.max(this.initialMs, opts.maxMs ?? 30_000);
    this.random = opts.random ?? Math.random;
  }

  /** Attempts made since the last reset. */
  get attempt(): number {
    return this.n;
  }

  /** Upper bound of the delay of attempt `n`. */
  ceiling(n: number): number {
    return Math.min(this.maxMs, this.initialMs * 2 ** n);
  }

  /** The delay before the next attempt; counts the attempt. */
  next(): number {
    const cap = this.ceiling(this.n);
    this.n++;
    const r = Math.min(Math.max(this.random(), 0), 1);
    return Math.min(Math.floor(r * cap), Math.max(cap - 1, 0));
  }

  /** After a successful connection (welcome) the next failure starts from the first delay again. */
  reset(): void {
    this.n = 0;
  }
}
