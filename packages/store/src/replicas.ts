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

/** `address:port` of the server a connection is connected to now; undefined while it is not. */
function endpoint(c: Redis): string | undefined {
  if (c.status !== 'ready') return undefined;
  const { remoteAddress, remotePort } = c.stream ?? {};
  return remoteAddress && remotePort ? `${remoteAddress}:${remotePort}` : undefined;
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
 * Confirms that the writes made so far reached `minReplicas` replicas. Redis' WAIT covers the
 * writes the connection issuing it made (its replication offset), so:
 * - on one Redis or Sentinel, a barrier connection of the gate's own writes a key
 *   (`barrierKey`) and WAITs: the master's replication stream is in execution order, and the
 *   callers' writes were answered before they asked, so the barrier's offset covers them, on
 *   whichever of the caller's connections they were made (API: store and queue), as long as
 *   the barrier is connected to the same server (checked; else the callers' connections WAIT
 *   themselves). A WAIT blocks its connection until it answers: on a connection of its own it
 *   never holds up the commands of other requests (on the request connection itself it cost
 *   60-70% of the publish rate, bench/src/replicas.ts, BENCHMARKS.md);
 * - on a Cluster, WAIT on each master's connection, in parallel (one barrier key per master
 *   would need a key per slot range; a master this connection wrote nothing to new answers at
 *   once, its replicas having acked the connection's older writes).
 */
export class ReplicaGate {
  /** Per connection (a Cluster's per master): the command its server supports, found once. */
  private readonly commands = new WeakMap<Redis, Promise<WaitCommand>>();
  /** Per WAITing connection: the WAIT in flight and the one gathering confirms for after it. */
  private readonly slots = new WeakMap<Redis, Slot>();
  /** The barrier connection (one Redis or Sentinel), made from the first caller's connection. */
  private barrier: Redis | undefined;

  constructor(
    readonly settings: ReplicaSettings,
    /** Key the barrier connection writes (a counter), e.g. `herald:replica-barrier`. */
    readonly barrierKey = 'herald:replica-barrier',
  ) {
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
    const each: { c: Redis; barrier: boolean }[] = [];
    const singles: Redis[] = [];
    for (const c of connections) {
      if (isCluster(c)) for (const m of c.nodes('master')) each.push({ c: m, barrier: false });
      else singles.push(c);
    }
    if (singles.length > 0) {
      const barrier = this.barrierFor(singles[0]!);
      // The barrier covers the callers' writes only on the server they wrote to. While it is not
      // connected, or (during a failover) connected to another server than a caller, WAIT on
      // the callers' own connections instead: slower (it blocks them), never wrong.
      const at = endpoint(barrier);
      if (at !== undefined && singles.every((c) => endpoint(c) === at))
        each.push({ c: barrier, barrier: true });
      else for (const c of new Set(singles)) each.push({ c, barrier: false });
    }
    const counts = await Promise.all(each.map(({ c, barrier }) => this.waitOn(c, barrier)));
    const least = Math.min(...counts);
    if (least < this.settings.minReplicas)
      throw new ReplicasNotConfirmed(least, this.settings.minReplicas, this.settings.timeoutMs);
  }

  /**
   * Before a read whose results confirmRead will vouch for: where the reading connection is
   * (undefined while it is not connected, or on a Cluster).
   */
  fence(c: RedisClient): string | undefined {
    return isCluster(c) ? undefined : endpoint(c);
  }

  /**
   * Resolves once what a read on `c` returned is on enough replicas; else throws
   * ReplicasNotConfirmed. Redis's WAIT covers the WAITing connection's own writes, so a reader
   * writes first, after its read: on one Redis or Sentinel the barrier (same server as the read,
   * before and after it, or this throws: during a failover the read may come from the old
   * master); on a Cluster `slotKey` (in the read stream's slot, expiring in a second), then every
   * master's connection WAITs as in confirm().
   */
  async confirmRead(c: RedisClient, fence: string | undefined, slotKey: string): Promise<void> {
    if (!this.enabled) return;
    const { minReplicas, timeoutMs } = this.settings;
    if (isCluster(c)) {
      await c.set(slotKey, '1', 'PX', 1000);
      return this.confirm(c);
    }
    const now = endpoint(c);
    if (now === undefined || fence !== now) throw new ReplicasNotConfirmed(0, minReplicas, timeoutMs);
    // The barrier connection when it is on that server; else (not connected yet) the reading
    // connection itself writes the barrier key and WAITs (blocking it meanwhile).
    const barrier = this.barrierFor(c);
    const n = await this.waitOn(endpoint(barrier) === now ? barrier : c, true);
    if (n < minReplicas) throw new ReplicasNotConfirmed(n, minReplicas, timeoutMs);
  }

  /** Closes the barrier connection, if one was made. */
  async close(): Promise<void> {
    const b = this.barrier;
    this.barrier = undefined;
    if (b) await b.quit().catch(() => b.disconnect());
  }

  private barrierFor(c: Redis): Redis {
    // Same server, Sentinel and options as the caller's, made on first use (until it is
    // connected, the callers' connections WAIT themselves).
    if (!this.barrier) {
      // No offline queue and no resend after a reconnect: a barrier command runs on the server
      // `endpoint` saw, or fails (503), never on one it reconnected to in between.
      this.barrier = c.duplicate({
        connectionName: 'herald:replica-barrier',
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
      });
      // Its outages reach the callers as failed WAITs; the caller's own connection logs them.
      this.barrier.on('error', () => {});
    }
    return this.barrier;
  }

  /**
   * At most one WAIT in flight per connection, and one more gathering the confirms that arrive
   * meanwhile: it is sent when the first answers, so it covers their writes (made before they
   * asked). Without this, a replica that stops answering would leave one blocked WAIT per
   * request queued on the connection (each up to the timeout) and every command behind them.
   */
  private waitOn(c: Redis, barrier: boolean): Promise<number> {
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
          return this.send(c, barrier);
        })
      : this.send(c, barrier);
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

  /**
   * Replicas that confirmed; 0 when the server refuses (a ReplyError): during a failover the
   * connection may still be on the old master, now a replica (`ERR WAIT cannot be used with
   * replica instances`, `READONLY` for the barrier write; a Cluster client's list of masters is
   * refreshed only after its next MOVED), which is "not confirmed" (503, retry), not a bug (500).
   * Found by the Cluster fault campaign (seed 1): two publishes answered 500 after a CLUSTER FAILOVER.
   */
  private async send(c: Redis, barrier: boolean): Promise<number> {
    try {
      return await this.sendWait(c, barrier);
    } catch (err) {
      const name = (err as Error).name;
      // AbortError: the connection closed while the WAIT (pipelined behind the barrier write)
      // was in flight, e.g. the old master's connections cut by a Sentinel failover (the
      // Sentinel campaign, seed 11: a publish answered 500).
      if (name === 'ReplyError' || name === 'AbortError') return 0;
      throw err;
    }
  }

  private async sendWait(c: Redis, barrier: boolean): Promise<number> {
    const { minReplicas, timeoutMs } = this.settings;
    const command = await this.commandOf(c);
    // Sent just before the WAIT on the same connection (not awaited first: one round trip).
    const wrote = barrier ? c.incr(this.barrierKey) : undefined;
    if (command === 'WAITAOF') {
      // [local fsyncs, replica fsyncs]: only the replicas are asked for (numlocal 0).
      const r = c.call('WAITAOF', 0, minReplicas, timeoutMs) as Promise<[number, number]>;
      return Number((await Promise.all([r, wrote]))[0][1]);
    }
    const r = c.call('WAIT', minReplicas, timeoutMs);
    return Number((await Promise.all([r, wrote]))[0]);
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
