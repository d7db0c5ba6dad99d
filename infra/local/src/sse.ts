import { type ClientRequest, type IncomingMessage, request } from 'node:http';

export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
  retry: number | undefined;
}

/**
 * A minimal EventSource for tests, on node:http: the events of one response, parsed as the HTML
 * spec says (fields, comments, blank-line dispatch), with bounded waits for them. Used by the push
 * node's tests and the system tests (optionally from a given source address, for the balancers).
 */
export class SseReader {
  readonly events: SseEvent[] = [];
  comments = 0;
  ended = false;
  private buf = '';
  private cur: SseEvent = { event: 'message', data: '', id: undefined, retry: undefined };
  private hasData = false;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    res.on('end', () => this.finish());
    res.on('close', () => this.finish());
    res.on('error', () => this.finish());
  }

  /** Opens `url`; resolves with the reader on 200, else rejects with the status and JSON body. */
  static open(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<SseReader> {
    return new Promise((resolve, reject) => {
      const req = request(url, {
        headers: { accept: 'text/event-stream', ...headers },
        agent: false,
        ...(localAddress ? { localAddress } : {}),
      });
      req.on('response', (res) => {
        if (res.statusCode === 200) return resolve(new SseReader(req, res));
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          reject(
            Object.assign(new Error(`HTTP ${res.statusCode}`), {
              status: res.statusCode,
              body,
              headers: res.headers,
            }),
          ),
        );
      });
      req.on('error', reject);
      req.end();
    });
  }

  private feed(chunk: string): void {
    this.buf += chunk;
    let i = this.buf.indexOf('\n');
    while (i >= 0) {
      const line = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      this.line(line);
      i = this.buf.indexOf('\n');
    }
    this.wake();
  }

  private line(line: string): void {
    if (line === '') {
      if (this.hasData) this.events.push(this.cur);
      this.cur = { event: 'message', data: '', id: this.cur.id, retry: undefined };
      this.hasData = false;
      return;
    }
    if (line.startsWith(':')) {
      this.comments++;
      return;
    }
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    if (field === 'event') this.cur.event = value;
    else if (field === 'data') {
      this.cur.data = this.hasData ? `${this.cur.data}\n${value}` : value;
      this.hasData = true;
    } else if (field === 'id') this.cur.id = value;
    else if (field === 'retry') this.cur.retry = Number(value);
  }

  private finish(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `pred` holds (checked on every chunk), at most `timeoutMs`. */
  async until(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Events of a type, in order. */
  of(type: string): SseEvent[] {
    return this.events.filter((e) => e.event === type);
  }

  /** Waits for the `n`th event (1-based) of `type`. */
  async event(type: string, n = 1, timeoutMs = 5000): Promise<SseEvent> {
    await this.until(() => this.of(type).length >= n, timeoutMs, `${type} #${n}`);
    return this.of(type)[n - 1]!;
  }

  close(): void {
    this.req.destroy();
  }
}

/** One HTTP request with a JSON answer (or none), from a given source address. */
export function http(
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<{ status: number; headers: Headers; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      headers: opts.headers,
      agent: false,
      timeout: 60_000,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers))
          if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
        resolve({ status: res.statusCode ?? 0, headers, json: text ? JSON.parse(text) : undefined });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}
