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

/** Close codes to the `reason` label of disconnects. */
export function closeReason(code: number): string {
  switch (code) {
    case 1009:
      return 'message_too_big';
    case 4000:
      return 'bad_frame';
    case 4001:
      return 'unauthorized';
    case 4002:
      return 'hello_timeout';
    case 4003:
      return 'token_expired';
    case 4008:
      return 'rate_limited';
    case 4009:
      return 'slow_consumer';
    case 4012:
      return 'draining';
    case 4013:
      return 'capacity';
    default:
      return code >= 4500 ? 'internal' : 'other';
  }
}
