/**
 * HTTP acks of the load generator's Herald SSE devices: `POST /v1/acks` with the device's token,
 * over a few keep-alive connections per process (acks are stateless, any node answers them, so
 * thousands of devices share them). At most `maxInFlight` requests are out at once: `post`
 * refuses beyond that and the caller keeps the (cumulative) ack for its next tick, so nothing
 * queues without bound and a slow server only makes acks coarser.
 */
import http from 'node:http';

export class HttpAcker {
  private inflight = 0;
  /** Acks sent. */
  sent = 0;
  /** Acks answered 204. */
  ok = 0;
  /** Acks that failed, by reason (HTTP status, socket error, timeout). */
  errors: Record<string, number> = {};
  private readonly agent: http.Agent;

  constructor(
    private readonly maxInFlight: number,
    private readonly timeoutMs = 10_000,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight, maxFreeSockets: maxInFlight });
  }

  /** Sends one ack; false when `maxInFlight` are out already (nothing sent). */
  post(host: string, port: number, token: string, body: string): boolean {
    if (this.inflight >= this.maxInFlight) return false;
    this.inflight++;
    this.sent++;
    let settled = false;
    const done = (reason: string | undefined) => {
      if (settled) return;
      settled = true;
      this.inflight--;
      if (reason === undefined) this.ok++;
      else this.errors[reason] = (this.errors[reason] ?? 0) + 1;
    };
    const req = http.request({
      host,
      port,
      method: 'POST',
      path: '/v1/acks',
      agent: this.agent,
      timeout: this.timeoutMs,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode === 204 ? undefined : `http:${res.statusCode}`));
      res.on('error', () => done('error:response'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => done(`error:${err.code ?? err.message.slice(0, 40)}`));
    req.end(body);
    return true;
  }

  reset(): void {
    this.sent = 0;
    this.ok = 0;
    this.errors = {};
  }

  close(): void {
    this.agent.destroy();
  }
}
