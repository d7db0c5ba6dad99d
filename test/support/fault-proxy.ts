import net from 'node:net';

/**
 * A TCP fault proxy for tests: put it between a process and what it talks to (Redis, or the
 * balancer and a push node) and inject network faults from the test:
 *
 * - `latency(ms, direction?)`: every chunk (both ways, or one) is held `ms` before it is forwarded
 *   (order kept); one way only makes a request arrive at once and its answer late;
 * - `stall()`: a half-open partition: connections stay open and new ones are accepted, but no
 *   byte is forwarded either way (nor a new upstream connection made) until `heal()`; as with a
 *   real partition that heals before TCP gives up, what was sent meanwhile then arrives;
 * - `blackhole(ms)`: a stall that heals by itself after `ms`;
 * - `reset()`: every open connection is cut with a TCP RST, both sides (new ones are accepted);
 * - `heal()`: no latency, forwarding again.
 *
 * Bounded: a direction that holds more than `maxBufferedBytes` (delayed chunks plus the socket's
 * unsent bytes) stops reading its source until it drains, so a stalled or slow peer pushes back
 * through TCP instead of growing memory; open connections are capped at `maxConnections` (more are
 * refused by closing them at once).
 */
export interface FaultProxyOptions {
  /** Where connections go. */
  target: { host: string; port: number };
  /** Listen port (default: a free one); always bound to 127.0.0.1. */
  port?: number;
  /** For messages (default `proxy->host:port`). */
  name?: string;
  /** Per direction of each connection (default 1 MiB). */
  maxBufferedBytes?: number;
  /** Default 2048. */
  maxConnections?: number;
}

type Mode = 'pass' | 'stall';

/** One direction of a proxied connection: reads `from`, writes `to`, in order, bounded. */
class Pipe {
  private readonly queue: Array<{ at: number; chunk: Buffer }> = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private readingPaused = false;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly maxBuffered: number,
    private readonly direction: 'up' | 'down',
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    to.on('drain', () => this.pump());
  }

  private push(chunk: Buffer): void {
    const delay = this.direction === 'up' ? this.proxy.latencyUpMs : this.proxy.latencyDownMs;
    this.queue.push({ at: Date.now() + delay, chunk });
    this.queued += chunk.length;
    this.pump();
  }

  /** Forwards what is due; pauses the source while over the bound or stalled; re-arms the timer. */
  pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.to.destroyed) return;
    const stalled = this.proxy.mode === 'stall';
    if (!stalled) {
      const now = Date.now();
      while (this.queue.length > 0 && this.queue[0]!.at <= now) {
        const { chunk } = this.queue.shift()!;
        this.queued -= chunk.length;
        this.to.write(chunk);
      }
      if (this.queue.length > 0) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, this.queue[0]!.at - now));
      }
    }
    const over = this.queued + this.to.writableLength > this.maxBuffered;
    if ((stalled || over) && !this.readingPaused) {
      this.readingPaused = true;
      this.from.pause();
    } else if (!stalled && !over && this.readingPaused) {
      this.readingPaused = false;
      this.from.resume();
    }
  }

  get bufferedBytes(): number {
    return this.queued;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queued = 0;
  }
}

/** A client connection and (once forwarding) its upstream connection. */
class Conn {
  upstream: net.Socket | undefined;
  private pipes: Pipe[] = [];
  private closed = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: net.Socket,
    private readonly target: { host: string; port: number },
    private readonly maxBuffered: number,
    private readonly onClose: (c: Conn) => void,
  ) {
    client.on('error', () => this.close(false));
    client.on('close', () => this.close(false));
    // Until the upstream exists nothing is read: the kernel's buffer holds what the client sends.
    client.pause();
  }

  /** Connects upstream (called when not stalled); no-op when already done. */
  open(): void {
    if (this.upstream || this.closed) return;
    const up = net.connect({ host: this.target.host, port: this.target.port });
    this.upstream = up;
    up.on('error', () => this.close(false));
    up.on('close', () => this.close(false));
    up.once('connect', () => {
      if (this.closed) return;
      this.pipes = [
        new Pipe(this.proxy, this.client, up, this.maxBuffered, 'up'),
        new Pipe(this.proxy, up, this.client, this.maxBuffered, 'down'),
      ];
      this.client.resume();
      for (const p of this.pipes) p.pump();
    });
  }

  pump(): void {
    if (!this.upstream) {
      if (this.proxy.mode === 'pass') this.open();
      return;
    }
    for (const p of this.pipes) p.pump();
  }

  get bufferedBytes(): number {
    return this.pipes.reduce((s, p) => s + p.bufferedBytes, 0);
  }

  /** Ends both sides: with a RST when `reset`, else a normal close once the other side closed. */
  close(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pipes) p.stop();
    for (const s of [this.client, this.upstream]) {
      if (!s || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
    this.onClose(this);
  }
}

export class FaultProxy {
  /** Per-chunk delay towards the target (`up`) and back (`down`). */
  latencyUpMs = 0;
  latencyDownMs = 0;
  mode: Mode = 'pass';
  readonly name: string;
  /** Connections accepted / reset by `reset()`, since start. */
  accepted = 0;
  resets = 0;
  private readonly conns = new Set<Conn>();
  private healTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly target: { host: string; port: number },
    name: string | undefined,
  ) {
    this.name = name ?? `proxy->${target.host}:${target.port}`;
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const maxBuffered = opts.maxBufferedBytes ?? 1 << 20;
    const maxConnections = opts.maxConnections ?? 2048;
    if (!Number.isInteger(opts.target.port) || opts.target.port <= 0 || opts.target.port > 65535) {
      throw new Error(`FaultProxy: bad target port ${opts.target.port}`);
    }
    let proxy: FaultProxy | undefined;
    const server = net.createServer({ pauseOnConnect: true }, (client) => {
      const p = proxy;
      if (!p || p.conns.size >= maxConnections) {
        client.destroy();
        return;
      }
      p.accepted++;
      const conn = new Conn(p, client, opts.target, maxBuffered, (c) => p.conns.delete(c));
      p.conns.add(conn);
      if (p.mode === 'pass') conn.open();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as net.AddressInfo).port;
    proxy = new FaultProxy(server, port, opts.target, opts.name);
    return proxy;
  }

  /** `redis://127.0.0.1:<port>` and the like. */
  url(scheme: string): string {
    return `${scheme}://127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Bytes held in delay queues right now (both directions, all connections). */
  get bufferedBytes(): number {
    let n = 0;
    for (const c of this.conns) n += c.bufferedBytes;
    return n;
  }

  /** Delays every chunk by `ms`: both ways, or only towards the target (`up`) or back (`down`). */
  latency(ms: number, direction: 'both' | 'up' | 'down' = 'both'): void {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`FaultProxy: bad latency ${ms}`);
    if (direction !== 'down') this.latencyUpMs = ms;
    if (direction !== 'up') this.latencyDownMs = ms;
  }

  /** Half-open partition until `heal()`. */
  stall(): void {
    this.clearHealTimer();
    this.mode = 'stall';
    for (const c of this.conns) c.pump();
  }

  /** A stall that heals by itself after `ms`. */
  blackhole(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`FaultProxy: bad blackhole time ${ms}`);
    this.stall();
    this.healTimer = setTimeout(() => this.heal(), ms);
  }

  /** Cuts every open connection with a RST; returns how many. */
  reset(): number {
    const all = [...this.conns];
    for (const c of all) c.close(true);
    this.resets += all.length;
    return all.length;
  }

  /** No latency, forwarding again (held bytes and connections go through). */
  heal(): void {
    this.clearHealTimer();
    this.latencyUpMs = 0;
    this.latencyDownMs = 0;
    this.mode = 'pass';
    for (const c of this.conns) c.pump();
  }

  /** Stops listening and cuts every connection. */
  async close(): Promise<void> {
    this.clearHealTimer();
    this.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private clearHealTimer(): void {
    if (this.healTimer) clearTimeout(this.healTimer);
    this.healTimer = undefined;
  }
}
