/**
 * Options of prom-client's `collectDefaultMetrics` for every Herald process. Its event-loop lag
 * histogram (`nodejs_eventloop_lag_*`) samples on a libuv timer, every 10 ms by default: 100
 * wake-ups a second in each idle process. Measured on the 2-core bench VM (Node 20, a process that
 * only monitors): 5.6 ms of CPU per second at 10 ms, 0.76 at 100 ms, 0.19 at 1,000 ms; a stack of
 * five Herald processes spent about 28 ms/s on it (BENCHMARKS.md, issue #14). At 100 ms a
 * 15 s scrape still rests on 150 samples, and a loop blocked for longer than that is caught whole.
 */
export const EVENT_LOOP_RESOLUTION_MS = 100;

export function defaultMetricsOptions<R>(register: R): { register: R; eventLoopMonitoringPrecision: number } {
  return { register, eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS };
}
