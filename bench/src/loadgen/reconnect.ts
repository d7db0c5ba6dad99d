/**
 * The load generator's reconnect mode (ConnectSpec.reconnect, off by default): a ready client
 * whose socket the server or the network closed comes back as the SDK does, with the SDK's own
 * `Backoff` (full jitter over min(maxMs, initialMs * 2^attempt), reset on `welcome`). A 4013 close
 * or any other failed attempt backs off further. Counts what the storm benchmark reports.
 */
import { Backoff } from '@herald/client';
import type { ReconnectStats } from './protocol.js';

export interface Reconnectable {
  /** The node named by the last `welcome`. */
  node: string;
}

export class Reconnector<C extends Reconnectable> {
  private readonly timers = new Map<C, NodeJS.Timeout>();
  private readonly waiting = new Set<C>();
  private readonly times: Record<string, number[]> = {};
  private readonly dropTimes: number[] = [];
  private readonly reasons: Record<string, number> = {};
  private drops = 0;
  private welcomes = 0;
  private refused4013 = 0;
  private failures = 0;
  private firstDropAt = 0;
  private lastWelcomeAt = 0;
  private stopped = false;

  constructor(
    private readonly opts: { initialMs: number; maxMs: number },
    /** Opens the client again (hello + welcome); resolves with a failure reason or undefined. */
    private readonly open: (c: C) => Promise<string | undefined>,
  ) {}

  /** A ready client was closed by the other side: reconnect it. */
  dropped(c: C): void {
    if (this.stopped || this.waiting.has(c)) return;
    this.drops++;
    const now = Date.now();
    if (this.firstDropAt === 0) this.firstDropAt = now;
    this.dropTimes.push(now);
    this.waiting.add(c);
    this.schedule(c, new Backoff(this.opts));
  }

  private schedule(c: C, backoff: Backoff): void {
    const t = setTimeout(() => {
      this.timers.delete(c);
      void this.attempt(c, backoff);
    }, backoff.next());
    this.timers.set(c, t);
  }

  private async attempt(c: C, backoff: Backoff): Promise<void> {
    if (this.stopped) return;
    const reason = await this.open(c);
    if (this.stopped) return;
    if (reason === undefined) {
      const now = Date.now();
      this.welcomes++;
      this.lastWelcomeAt = now;
      this.times[c.node] ??= [];
      this.times[c.node]!.push(now);
      this.waiting.delete(c);
      return;
    }
    if (reason === 'close:4013') this.refused4013++;
    else {
      this.failures++;
      this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
    }
    this.schedule(c, backoff);
  }

  stats(withTimes: boolean): ReconnectStats {
    return {
      drops: this.drops,
      welcomes: this.welcomes,
      refused4013: this.refused4013,
      failures: this.failures,
      failureReasons: { ...this.reasons },
      waiting: this.waiting.size,
      firstDropAt: this.firstDropAt,
      lastWelcomeAt: this.lastWelcomeAt,
      ...(withTimes ? { welcomeTimes: this.times, dropTimes: this.dropTimes } : {}),
    };
  }

  /** No more attempts (the generator is closing its clients). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.waiting.clear();
  }
}
