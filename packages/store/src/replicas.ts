import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './redis.js';

/** HERALD_REDIS_MIN_REPLICAS and HERALD_REDIS_REPLICA_TIMEOUT_MS. */
export interface ReplicaSettings {
  /** Replicas that must hold a write before it is answered (0: none, asynchronous replication). */
  minReplicas: number;
  /** Longest wait for them; past it the write counts as not confirmed. */
  timeoutMs: number;
}

/**
 * The writes were made on the master but fewer than the required replicas confirmed them in
 * time. They may still be there (and survive), or be lost by a failover: the caller answers
 * 503 HERALD_REDIS_UNAVAILABLE, whose contract (docs/api.md) already says a publish may have
 * happened; a retry with the same Idempotency-Key is safe.
 */
export class ReplicasNotConfirmed extends Error {
  readonly code = 'HERALD_REDIS_UNAVAILABLE';
  constructor(
    readonly confirmed: number,
    readonly wanted: number,
    readonly timeoutMs: number,
  ) {
    super(
      `Redis is unavailable; retry later (${confirmed} of ${wanted} replicas confirmed in ${timeoutMs} ms)`,
    );
    this.name = 'ReplicasNotConfirmed';
  }
}

interface Slot {
  /** Settles when the last WAIT sent or queued on the connection has answered. */
  tail?: Promise<void>;
  /** The WAIT queued behind the one in flight, not sent yet: later confirms join it. */
  next?: Promise<number>;
}

/** The command a server confirms replication with. */
export type WaitCommand = 'WAIT' | 'WAITAOF';

/**
 * WAITAOF (Redis 7.2+) confirms the write is fsynced in the replicas' AOF, stronger than WAIT
 * (in their memory). It only ever confirms where the replicas run AOF, which a master cannot
 * see: it is used when the server has it and runs AOF itself (replicas are set up like their
 * master; infra/local and docs/operations.md do). Otherwise WAIT: this machine's Redis 7.0.
 */
export function waitCommandFor(info: string): WaitCommand {
  const v = /redis_version:(\d+)\.(\d+)/.exec(info);
  const major = Number(v?.[1] ?? 0);
  const minor = Number(v?.[2] ?? 0);
  const has = major > 7 || (major === 7 && minor >= 2);
  return has && /aof_enabled:1\b/.test(info) ? 'WAITAOF' : 'WAIT';
}

/**
 * Confirms that the writes a connection made reached `minReplicas` replicas. Redis' WAIT covers
 * every write the same connection sent before it, so it goes on the connection that wrote: for
 * a Redis or Sentinel that one connection (writes of other requests pipelined on it are
 * confirmed with it: a group commit); on a Cluster each master's connection, in parallel (a
 * master this connection wrote nothing to new answers at once, its replicas having acked
 * the connection's older writes).
 *
 * WAIT blocks the connection until it answers, so the commands queued behind it wait one
 * replication round trip: bench/src/replicas.ts measures what that costs (BENCHMARKS.md).
 */
export class ReplicaGate {
  /** Per connection (a Cluster's per master): the command its server supports, found once. */
  private readonly commands = new WeakMap<Redis, Promise<WaitCommand>>();
  /** Per connection: the WAIT in flight and the one gathering confirms for after it. */
  private readonly slots = new WeakMap<Redis, Slot>();

  constructor(readonly settings: ReplicaSettings) {
    if (!Number.isInteger(settings.minReplicas) || settings.minReplicas < 0)
      throw new Error(`minReplicas must be an integer >= 0, got ${settings.minReplicas}`);
    if (!Number.isInteger(settings.timeoutMs) || settings.timeoutMs < 1)
      throw new Error(`replica timeoutMs must be an integer >= 1, got ${settings.timeoutMs}`);
  }

  get enabled(): boolean {
    return this.settings.minReplicas > 0;
  }

  /** Resolves once every connection's writes so far are on enough replicas; else throws ReplicasNotConfirmed. */
  async confirm(...connections: RedisClient[]): Promise<void> {
    if (!this.enabled) return;
    const each = connections.flatMap((c) => (isCluster(c) ? c.nodes('master') : [c]));
    const counts = await Promise.all(each.map((c) => this.waitOn(c)));
    const least = Math.min(...counts);
    if (least < this.settings.minReplicas)
      throw new ReplicasNotConfirmed(least, this.settings.minReplicas, this.settings.timeoutMs);
  }

  /**
   * At most one WAIT in flight per connection, and one more gathering the confirms that arrive
   * meanwhile: it is sent when the first answers, so it covers their writes (made before they
   * asked). Without this, a replica that stops answering would leave one blocked WAIT per
   * request queued on the connection (each up to the timeout) and every command behind them.
   */
  private waitOn(c: Redis): Promise<number> {
    let s = this.slots.get(c);
    if (!s) {
      s = {};
      this.slots.set(c, s);
    }
    const slot = s;
    if (slot.next) return slot.next;
    const turn = slot.tail;
    const p: Promise<number> = turn
      ? turn.then(() => {
          slot.next = undefined;
          return this.send(c);
        })
      : this.send(c);
    if (turn) slot.next = p;
    const tail: Promise<void> = p.then(
      () => this.done(slot, tail),
      () => this.done(slot, tail),
    );
    slot.tail = tail;
    return p;
  }

  private done(slot: Slot, tail: Promise<void>): void {
    if (slot.tail === tail) slot.tail = undefined;
  }

  private async send(c: Redis): Promise<number> {
    const { minReplicas, timeoutMs } = this.settings;
    if ((await this.commandOf(c)) === 'WAITAOF') {
      // [local fsyncs, replica fsyncs]: only the replicas are asked for (numlocal 0).
      const r = (await c.call('WAITAOF', 0, minReplicas, timeoutMs)) as [number, number];
      return Number(r[1]);
    }
    return Number(await c.call('WAIT', minReplicas, timeoutMs));
  }

  private commandOf(c: Redis): Promise<WaitCommand> {
    let found = this.commands.get(c);
    if (!found) {
      found = c.info().then(waitCommandFor);
      // A failed look-up (Redis down) is asked again next time, not remembered.
      found.catch(() => this.commands.delete(c));
      this.commands.set(c, found);
    }
    return found;
  }
}
