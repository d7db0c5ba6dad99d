import http from 'node:http';

/** A keep-alive HTTP POST client with a bounded number of requests in flight. */
export class HttpPublisher {
  private readonly agent: http.Agent;
  /** Answers by status code (0: network error or timeout). */
  readonly statuses: Record<number, number> = {};
  errors = 0;
  lastError = '';

  constructor(readonly maxInFlight = 32) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight, maxFreeSockets: maxInFlight });
  }

  post(url: string, body: string, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<number> {
    return new Promise((resolve) => {
      const req = http.request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            ...headers,
          },
          timeout: timeoutMs,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const s = res.statusCode ?? 0;
            this.statuses[s] = (this.statuses[s] ?? 0) + 1;
            resolve(s);
          });
          res.on('error', () => resolve(0));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        this.errors++;
        this.lastError = err.message;
        this.statuses[0] = (this.statuses[0] ?? 0) + 1;
        resolve(0);
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Runs `count` jobs with at most `window` in flight, as fast as they complete; resolves with the
 * time the last one finished (ms, performance.now()).
 */
export async function runWindowed(
  count: number,
  window: number,
  job: (i: number) => Promise<unknown>,
  deadlineMs = 120_000,
): Promise<{ done: number; endedAt: number }> {
  let next = 0;
  let done = 0;
  const deadline = performance.now() + deadlineMs;
  const lane = async () => {
    while (next < count && performance.now() < deadline) {
      const i = next++;
      await job(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
  return { done, endedAt: performance.now() };
}

/** Starts job i at `start + i / rate` seconds (open loop: a slow answer does not delay the next). */
export async function runPaced(
  count: number,
  ratePerS: number,
  job: (i: number) => Promise<unknown>,
): Promise<{ started: number; lateMs: number }> {
  const t0 = performance.now();
  const inflight: Promise<unknown>[] = [];
  let lateMs = 0;
  for (let i = 0; i < count; i++) {
    const at = t0 + (i * 1000) / ratePerS;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else lateMs = Math.max(lateMs, -wait);
    inflight.push(job(i));
  }
  await Promise.all(inflight);
  return { started: count, lateMs: Math.round(lateMs) };
}
