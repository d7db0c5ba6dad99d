import type { Expiring } from './ports.js';

/**
 * Token expiries of every connection, checked once a second by one timer, instead of one timer
 * per connection (a Timeout, and since each expiry is a different delay, a timer list each).
 * Clients are bucketed by the second their token expires in; a client is closed within a second
 * after its `exp`.
 */
export class Expiries {
  private readonly buckets = new Map<number, Set<Expiring>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly tickMs = 1000) {}

  /** Tracks `c` until `expMs` (ms since epoch); returns the bucket key to pass to `remove`. */
  add(c: Expiring, expMs: number): number {
    const key = Math.ceil(expMs / 1000);
    const b = this.buckets.get(key);
    if (b) b.add(c);
    else this.buckets.set(key, new Set([c]));
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
    return key;
  }

  remove(c: Expiring, key: number): void {
    const b = this.buckets.get(key);
    if (!b) return;
    b.delete(c);
    if (b.size === 0) this.buckets.delete(key);
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }

  private tick(now = Date.now()): void {
    for (const [key, b] of this.buckets) {
      if (key * 1000 > now) continue;
      this.buckets.delete(key);
      for (const c of b) c.expire();
    }
    if (this.buckets.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
