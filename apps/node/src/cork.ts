/**
 * Per-tick corking shared by the transports: a stream written several times in one tick (a burst
 * of doorbells parsed from one Redis read, a replay batch, a broadcast) leaves in one writev
 * instead of one syscall per frame. Measured: one write per event costs 7.0-7.9 us of CPU per SSE
 * event at 1,000 sockets, corked per tick 2.3 us (`node bench/dist/write-cork.js`, BENCHMARKS.md).
 *
 * A stream still corked when written to again is one this tick already corked (ws corks around a
 * single frame and uncorks at once), so no flag per connection is needed, and one nextTick uncorks
 * every stream of the tick.
 */
export interface Corkable {
  cork(): void;
  uncork(): void;
  readonly writableCorked: number;
}

const corked: Corkable[] = [];

function uncorkAll(): void {
  for (const s of corked) s.uncork();
  corked.length = 0;
}

/** Holds `s`'s writes until the end of this tick. */
export function corkForTick(s: Corkable): void {
  if (s.writableCorked > 0) return;
  s.cork();
  if (corked.push(s) === 1) process.nextTick(uncorkAll);
}
