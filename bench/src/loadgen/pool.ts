import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Histogram } from '../histogram.js';
import { ulimitWrapped } from '../limits.js';
import type {
  Command,
  ConnectResult,
  ConnectSpec,
  DeliveryStats,
  ReconnectStats,
  Reply,
} from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface PoolConnectResult extends ConnectResult {
  /** Wall time of the whole phase across generators, ms. */
  wallMs: number;
}

export interface PoolStats extends Omit<DeliveryStats, 'hist'> {
  hist: Histogram;
}

/** A command without its id (distributes over the union). */
type CommandBody = Command extends infer C ? (C extends Command ? Omit<C, 'id'> : never) : never;

type Pending = { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** A generator child: `bash -c 'ulimit -n ...; exec node worker.js'` with an IPC channel. */
class Generator {
  readonly child: ChildProcess;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  readonly exited: Promise<void>;

  constructor(
    readonly index: number,
    logFile: string,
  ) {
    const fd = fs.openSync(logFile, 'a');
    try {
      this.child = spawn('bash', ulimitWrapped(process.execPath, [WORKER]), {
        stdio: ['ignore', fd, fd, 'ipc'],
      });
    } finally {
      fs.closeSync(fd);
    }
    this.child.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.op === 'error') p.reject(new Error(`load generator ${index}: ${r.message}`));
      else p.resolve(r);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(
            new Error(`load generator ${index} exited (code ${code}, signal ${signal}); log ${logFile}`),
          );
        }
        this.pending.clear();
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  request<R extends Reply>(cmd: CommandBody, timeoutMs: number): Promise<R> {
    const id = ++this.nextId;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`load generator ${this.index}: ${cmd.op} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (r: Reply) => void, reject, timer });
      if (!this.child.connected) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new Error(`load generator ${this.index} is not running`));
        return;
      }
      this.child.send({ ...cmd, id } as Command);
    });
  }
}

const live = new Set<Generator>();
process.on('exit', () => {
  for (const g of live) {
    try {
      if (g.pid) process.kill(g.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** Load-generator processes, each holding a contiguous share of the clients. */
export class LoadGenPool {
  private constructor(private readonly gens: Generator[]) {}

  static async start(count: number, logDir: string): Promise<LoadGenPool> {
    fs.mkdirSync(logDir, { recursive: true });
    const gens: Generator[] = [];
    for (let i = 0; i < count; i++) {
      const g = new Generator(i, `${logDir}/loadgen-${i}.log`);
      live.add(g);
      void g.exited.then(() => live.delete(g));
      gens.push(g);
    }
    const pool = new LoadGenPool(gens);
    // Make sure each one is up (and the IPC channel works).
    await Promise.all(gens.map((g) => g.request({ op: 'expect', perClient: 0 }, 20_000)));
    return pool;
  }

  get size(): number {
    return this.gens.length;
  }

  pids(): number[] {
    return this.gens.map((g) => g.pid).filter((p) => p > 0);
  }

  /**
   * Splits `total` new clients over the generators (contiguous index ranges) and prepares them
   * (tokens are minted here, outside the timed part); `connect` then opens them all.
   */
  async prepare(
    base: Omit<ConnectSpec, 'first' | 'count' | 'concurrency'>,
    total: number,
    concurrency: number,
    /** Global index of the first of these clients (when adding to clients already held). */
    offset = 0,
  ): Promise<void> {
    const n = this.gens.length;
    let first = offset;
    await Promise.all(
      this.gens.map((g, i) => {
        const count = Math.floor(total / n) + (i < total % n ? 1 : 0);
        const spec: ConnectSpec = {
          ...base,
          first,
          count,
          concurrency: Math.max(1, Math.ceil(concurrency / n)),
        };
        first += count;
        return g.request({ op: 'prepare', spec }, 300_000);
      }),
    );
  }

  async connect(phaseTimeoutMs: number): Promise<PoolConnectResult> {
    const t0 = performance.now();
    const replies = await Promise.all(
      this.gens.map((g) =>
        g.request<Extract<Reply, { op: 'connected' }>>({ op: 'connect' }, phaseTimeoutMs + 60_000),
      ),
    );
    const out: PoolConnectResult = { ok: 0, failed: 0, errors: {}, ms: 0, perNode: {}, wallMs: 0 };
    for (const { result } of replies) {
      out.ok += result.ok;
      out.failed += result.failed;
      out.ms = Math.max(out.ms, result.ms);
      for (const [k, v] of Object.entries(result.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
      for (const [k, v] of Object.entries(result.perNode)) out.perNode[k] = (out.perNode[k] ?? 0) + v;
    }
    out.wallMs = Math.round(performance.now() - t0);
    return out;
  }

  async expect(perClient: number): Promise<void> {
    await Promise.all(this.gens.map((g) => g.request({ op: 'expect', perClient }, 30_000)));
  }

  async stats(): Promise<PoolStats> {
    const replies = await Promise.all(
      this.gens.map((g) => g.request<Extract<Reply, { op: 'stats' }>>({ op: 'stats' }, 30_000)),
    );
    const parts = replies.map((r) => r.stats);
    const sum = (f: (s: DeliveryStats) => number) => parts.reduce((a, s) => a + f(s), 0);
    const firsts = parts.map((p) => p.firstAt).filter((x) => x > 0);
    const dropReasons: Record<string, number> = {};
    const ackErrors: Record<string, number> = {};
    for (const p of parts) {
      for (const [k, v] of Object.entries(p.dropReasons)) dropReasons[k] = (dropReasons[k] ?? 0) + v;
      for (const [k, v] of Object.entries(p.ackErrors)) ackErrors[k] = (ackErrors[k] ?? 0) + v;
    }
    return {
      received: sum((s) => s.received),
      unique: sum((s) => s.unique),
      duplicates: sum((s) => s.duplicates),
      unexpected: sum((s) => s.unexpected),
      dropped: sum((s) => s.dropped),
      dropReasons,
      open: sum((s) => s.open),
      firstAt: firsts.length ? Math.min(...firsts) : 0,
      lastAt: Math.max(0, ...parts.map((p) => p.lastAt)),
      hist: Histogram.merge(parts.map((p) => p.hist)),
      cpuS: sum((s) => s.cpuS),
      acks: sum((s) => s.acks),
      acksAnswered: sum((s) => s.acksAnswered),
      ackErrors,
    };
  }

  /** The reconnect mode's counts over all generators (ConnectSpec.reconnect); `times`: welcome times too. */
  async reconnects(times = false): Promise<ReconnectStats> {
    const replies = await Promise.all(
      this.gens.map((g) =>
        g.request<Extract<Reply, { op: 'reconnects' }>>({ op: 'reconnects', times }, 30_000),
      ),
    );
    const out: ReconnectStats = {
      drops: 0,
      welcomes: 0,
      refused4013: 0,
      failures: 0,
      failureReasons: {},
      waiting: 0,
      firstDropAt: 0,
      lastWelcomeAt: 0,
      ...(times ? { welcomeTimes: {}, dropTimes: [] } : {}),
    };
    for (const { stats: r } of replies) {
      out.drops += r.drops;
      out.welcomes += r.welcomes;
      out.refused4013 += r.refused4013;
      out.failures += r.failures;
      out.waiting += r.waiting;
      for (const [k, v] of Object.entries(r.failureReasons))
        out.failureReasons[k] = (out.failureReasons[k] ?? 0) + v;
      if (r.firstDropAt > 0 && (out.firstDropAt === 0 || r.firstDropAt < out.firstDropAt))
        out.firstDropAt = r.firstDropAt;
      out.lastWelcomeAt = Math.max(out.lastWelcomeAt, r.lastWelcomeAt);
      if (out.dropTimes) out.dropTimes = out.dropTimes.concat(r.dropTimes ?? []);
      for (const [node, ts] of Object.entries(r.welcomeTimes ?? {}))
        out.welcomeTimes![node] = [...(out.welcomeTimes![node] ?? []), ...ts];
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.gens.map((g) => g.request({ op: 'close' }, 60_000)));
  }

  /** Asks each generator to exit, then SIGKILLs by PID whatever is left after a deadline. */
  async stop(): Promise<void> {
    await Promise.all(
      this.gens.map(async (g) => {
        await g.request({ op: 'exit' }, 10_000).catch(() => undefined);
        const t = setTimeout(() => {
          try {
            if (g.pid) process.kill(g.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }, 5000);
        await g.exited;
        clearTimeout(t);
      }),
    );
  }
}
