import WebSocket from 'ws';

export interface Frame {
  type: string;
  [k: string]: unknown;
}

/** A raw protocol client for tests: records every frame and the close, and waits on them with bounds. */
export class Probe {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.frames.push(JSON.parse(d.toString()) as Frame);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  /** `localAddress` (127.0.0.x) picks the source address, which the balancer hashes on. */
  static async open(url: string, opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<Probe> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const ws = new WebSocket(url, opts.localAddress ? { localAddress: opts.localAddress } : {});
    const p = new Probe(ws);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`connect to ${url} timed out`)), timeoutMs);
      ws.once('open', () => {
        clearTimeout(t);
        resolve();
      });
      ws.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    return p;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves when `cond` holds, re-checked on every frame or close; rejects after `timeoutMs`. */
  async until<T>(cond: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = cond();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; frames: ${JSON.stringify(this.frames.slice(-5))}, closed: ${JSON.stringify(this.closed)}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  frame(type: string, timeoutMs = 5000, pred: (f: Frame) => boolean = () => true): Promise<Frame> {
    return this.until(() => this.frames.find((f) => f.type === type && pred(f)), `${type} frame`, timeoutMs);
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closed, 'close', timeoutMs);
  }

  notifications(stream?: string): Frame[] {
    return this.frames.filter(
      (f) => f.type === 'notification' && (stream === undefined || f.stream === stream),
    );
  }

  close(): void {
    this.ws.terminate();
  }
}
