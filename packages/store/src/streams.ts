import { parseStream } from '@herald/protocol';
import { decodeEntry, type Entry, entryOptionArgs, type NewEntry } from './entry.js';
import type { Keys, StreamKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import type { ReplicaGate } from './replicas.js';
import { type StreamEntryReply, withScripts } from './scripts.js';

export interface StreamLimits {
  /** Most entries kept per device inbox (approximate trim). */
  inboxMaxLen: number;
  /** Most entries kept per topic or broadcast stream (approximate trim). */
  topicMaxLen: number;
  /** How long a stream outlives its longest-lived entry, so cursors can be checked against its head. */
  keepMs: number;
}

export interface InboxAppend {
  device: string;
  seq: number;
  /** Nodes the device is connected to right now. */
  nodes: string[];
  /** Appended by an earlier run of the same fan-out step (`once`): nothing was appended now. */
  dup: boolean;
}

export interface StreamRead {
  /** The stream's head seq (0 when the stream does not exist). */
  head: number;
  entries: Entry[];
}

/** Device inboxes and topic/broadcast streams: append with contiguous seqs, read after a cursor. */
export class Streams {
  private readonly redis: RedisClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    readonly limits: StreamLimits,
    /**
     * HERALD_REDIS_MIN_REPLICAS on a reader (the nodes): entries are returned only once the
     * replicas hold them, else the read throws ReplicasNotConfirmed (the node retries). A publish
     * answered 503 because its replicas did not confirm leaves its entry on the master; a node
     * resyncing a stream would otherwise deliver it, and a failover then take it back (the
     * stream's seq steps back: `reset` gaps, and the publisher's retry delivered under a new id).
     */
    private readonly gate?: ReplicaGate,
  ) {
    this.redis = withScripts(redis);
  }

  /** The same streams for another app's keys (`keys.forApp(id)`). */
  withKeys(keys: Keys): Streams {
    return keys === this.keys ? this : new Streams(this.redis, keys, this.limits);
  }

  /**
   * Appends one entry to many inboxes in one round trip (auto-pipelined, per shard on a
   * cluster); returns seq and presence per device. `once`: at most once per notification id and
   * inbox (a fan-out step, which a retry may run again; lib/append.lua).
   */
  async appendInboxes(
    devices: readonly string[],
    entry: NewEntry,
    now = Date.now(),
    once = false,
  ): Promise<InboxAppend[]> {
    const argv = this.argv(entry, this.limits.inboxMaxLen, now, once);
    const replies = await Promise.all(
      devices.map((device) => {
        const k = this.keys.inbox(device);
        return this.redis.heraldAppend(
          k.stream,
          k.seq,
          this.keys.presence(device),
          this.keys.appendMark(k, entry.id),
          this.keys.collapse(k),
          ...argv,
        );
      }),
    );
    return replies.map((reply, i) => {
      const [seq, dup, ...nodes] = reply;
      return { device: devices[i] as string, seq: Number(seq), nodes: nodes as string[], dup: dup === 1 };
    });
  }

  async appendTopic(topic: string, entry: NewEntry, now = Date.now()): Promise<number> {
    return (await this.appendShared(this.keys.topic(topic), entry, now)).seq;
  }

  async appendBroadcast(entry: NewEntry, now = Date.now()): Promise<number> {
    return (await this.appendShared(this.keys.broadcast(), entry, now)).seq;
  }

  /** Appends to a topic or the broadcast stream (its seq); `once` and `dup` as for appendInboxes. */
  async appendShared(
    k: StreamKeys,
    entry: NewEntry,
    now = Date.now(),
    once = false,
  ): Promise<{ seq: number; dup: boolean }> {
    const [seq, dup] = await this.redis.heraldAppend(
      k.stream,
      k.seq,
      this.keys.noPresence(k),
      this.keys.appendMark(k, entry.id),
      this.keys.collapse(k),
      ...this.argv(entry, this.limits.topicMaxLen, now, once),
    );
    return { seq: Number(seq), dup: dup === 1 };
  }

  private argv(entry: NewEntry, maxLen: number, now: number, once: boolean): (string | number)[] {
    return [
      entry.id,
      entry.data,
      entry.ts,
      entry.exp,
      maxLen,
      now,
      this.limits.keepMs,
      once ? '1' : '0',
      ...entryOptionArgs(entry),
    ];
  }

  /**
   * True when reads wait for the replicas (HERALD_REDIS_MIN_REPLICAS on a node): a doorbell's
   * entry was published before its replicas confirmed it, so it is read back (gated) rather
   * than delivered from the doorbell.
   */
  get gated(): boolean {
    return this.gate?.enabled ?? false;
  }

  /** Keys of a wire stream name as seen by one device. */
  keysOf(stream: string, device: string): StreamKeys {
    const s = parseStream(stream);
    if (!s) throw new Error(`unknown stream ${stream}`);
    if (s.kind === 'inbox') return this.keys.inbox(device);
    if (s.kind === 'broadcast') return this.keys.broadcast();
    return this.keys.topic(s.topic);
  }

  /**
   * Entries after `after` (exclusive), at most `count`, with the stream's head. An entry whose
   * collapseKey a later entry of the stream holds is marked `collapsed` (read.lua).
   */
  async read(k: StreamKeys, after: number, count: number): Promise<StreamRead> {
    const gate = this.gate?.enabled ? this.gate : undefined;
    const fence = gate?.fence(this.redis);
    const [head, raw, collapsed] = await this.redis.heraldRead(
      k.stream,
      k.seq,
      this.keys.collapse(k),
      `${after + 1}-0`,
      count,
    );
    if (gate && raw.length > 0) await gate.confirmRead(this.redis, fence, this.keys.readBarrier(k));
    const entries = raw.map(decodeEntry);
    if (collapsed.length > 0) {
      const ids = new Set(collapsed);
      for (let i = 0; i < entries.length; i++)
        if (ids.has((raw[i] as StreamEntryReply)[0])) (entries[i] as Entry).collapsed = true;
    }
    return { head: Number(head), entries };
  }

  async head(k: StreamKeys): Promise<number> {
    return Number((await this.redis.get(k.seq)) ?? 0);
  }

  /** Heads of many streams in one round trip. */
  async heads(ks: readonly StreamKeys[]): Promise<number[]> {
    const replies = await Promise.all(ks.map((k) => this.redis.get(k.seq)));
    return replies.map((v) => Number(v ?? 0));
  }
}
