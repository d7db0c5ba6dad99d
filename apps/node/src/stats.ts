/**
 * Plain counters bumped on the hot paths (a property increment per frame); the metrics module
 * turns them into Prometheus series on scrape, so delivery never pays for label lookups.
 */
export class Stats {
  connects = 0;
  readonly disconnects = new Map<string, number>();
  readonly framesIn = new Map<string, number>();
  readonly framesOut = new Map<string, number>();
  readonly deliveries = { inbox: 0, topic: 0, broadcast: 0 };
  acks = 0;
  replayed = 0;
  readonly gaps = new Map<string, number>();
  slowConsumers = 0;
  redisErrors = 0;
  /** Publish-to-socket latencies (seconds) of live deliveries since the last scrape, bounded. */
  readonly latencies: number[] = [];

  static bump(m: Map<string, number>, key: string, n = 1): void {
    m.set(key, (m.get(key) ?? 0) + n);
  }

  latency(seconds: number): void {
    // Bounded: between scrapes keep at most 100k samples (later ones are dropped, not the process).
    if (this.latencies.length < 100_000) this.latencies.push(seconds);
  }
}
