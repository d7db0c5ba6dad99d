import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Emitter } from '../src/emitter.js';

export interface Frame {
  type: string;
  [k: string]: unknown;
}

const WAIT_MS = 3000;

/** Wakes waiters whenever something they may wait on changes; every wait is bounded. */
export class Signal {
  private waiters: (() => void)[] = [];

  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async until<T>(cond: () => T | undefined | false, what: string, timeoutMs = WAIT_MS): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = cond();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** One client connection as the scripted node sees it: every frame recorded, waits bounded. */
export class FakeSocket {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  readonly openedAt = Date.now();
  private readonly signal = new Signal();
  private read = 0;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.frames.push(JSON.parse(d.toString()) as Frame);
      this.signal.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.signal.wake();
    });
    ws.on('error', () => undefined);
  }

  /** Re-checks pending waits (for conditions on state the test keeps itself). */
  poke(): void {
    this.signal.wake();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame of `type` after the last one taken by `next`. */
  async next(type: string, timeoutMs = WAIT_MS): Promise<Frame> {
    return this.signal.until(
      () => {
        for (let i = this.read; i < this.frames.length; i++) {
          if (this.frames[i]!.type === type) {
            this.read = i + 1;
            return this.frames[i]!;
          }
        }
        return undefined;
      },
      `a ${type} frame (got ${JSON.stringify(this.frames.slice(-5))})`,
      timeoutMs,
    );
  }

  all(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  until<T>(cond: () => T | undefined | false, what: string, timeoutMs = WAIT_MS): Promise<T> {
    return this.signal.until(cond, what, timeoutMs);
  }

  waitClosed(timeoutMs = WAIT_MS): Promise<{ code: number; reason: string }> {
    return this.signal.until(() => this.closed, 'the socket to close', timeoutMs);
  }

  /** Answers the hello with a welcome. */
  async welcome(streams: Record<string, number> = { inbox: 0 }, heartbeatMs = 30_000): Promise<Frame> {
    const hello = await this.next('hello');
    const s: Record<string, { cursor: number }> = {};
    for (const [k, v] of Object.entries(streams)) s[k] = { cursor: v };
    this.send({ type: 'welcome', node: 'fake-1', device: 'd1', user: 'u1', heartbeatMs, streams: s });
    return hello;
  }

  notify(stream: string, seq: number, id = `${stream}-${seq}`, data: unknown = { seq }): void {
    this.send({ type: 'notification', stream, seq, id, ts: Date.now(), data });
  }

  close(code: number, reason = ''): void {
    this.ws.close(code, reason);
  }
}

/** A scripted push node on 127.0.0.1, port 0: speaks the wire protocol as the test tells it to. */
export class FakeNode {
  readonly sockets: FakeSocket[] = [];
  private readonly signal = new Signal();
  private taken = 0;

  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {
    wss.on('connection', (ws) => {
      this.sockets.push(new FakeSocket(ws));
      this.signal.wake();
    });
  }

  static async start(): Promise<FakeNode> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/ws' });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    const { port } = wss.address() as AddressInfo;
    return new FakeNode(wss, `ws://127.0.0.1:${port}/v1/ws`);
  }

  /** The next connection after the last one taken. */
  async nextSocket(timeoutMs = WAIT_MS): Promise<FakeSocket> {
    const s = await this.signal.until(() => this.sockets[this.taken], 'a connection', timeoutMs);
    this.taken++;
    return s;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** Records every value of some events of an emitter, and waits on them with a bound. */
export class Recorder<E extends object> {
  readonly events: { [K in keyof E]?: E[K][] } = {};
  private readonly signal = new Signal();

  constructor(emitter: Emitter<E>, names: (keyof E)[]) {
    for (const name of names) {
      const list: E[typeof name][] = [];
      this.events[name] = list;
      emitter.on(name, (v) => {
        list.push(v);
        this.signal.wake();
      });
    }
  }

  of<K extends keyof E>(name: K): E[K][] {
    return this.events[name] ?? [];
  }

  /** Resolves with the first recorded value of `name` that matches, waiting for it if needed. */
  wait<K extends keyof E>(
    name: K,
    pred: (v: E[K]) => boolean = () => true,
    timeoutMs = WAIT_MS,
  ): Promise<E[K]> {
    return this.signal
      .until(
        () => {
          const hit = this.of(name).find(pred);
          return hit === undefined ? undefined : { hit };
        },
        `event ${String(name)}`,
        timeoutMs,
      )
      .then((r) => r.hit);
  }

  /** Resolves with the n-th (1-based) value of `name`, waiting for it if needed. */
  nth<K extends keyof E>(name: K, n: number, timeoutMs = WAIT_MS): Promise<E[K]> {
    return this.signal
      .until(
        () => {
          const list = this.of(name);
          return list.length >= n ? { hit: list[n - 1] as E[K] } : undefined;
        },
        `event ${String(name)} #${n}`,
        timeoutMs,
      )
      .then((r) => r.hit);
  }
}
