import { parseStream } from '@herald/protocol';
import { decodeEntry, type Entry, type NewEntry } from './entry.js';
import type { Keys, StreamKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

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
  ) {
    this.redis = withScripts(redis);
  }

  /** The same streams for another app's keys (`keys.forApp(id)`). */
  withKeys(keys: Keys): Streams {
    return keys === this.keys ? this : new Streams(this.redis, keys, this.limits);
  }

  /**
   * Appends one entry to many inboxes in one round trip (auto-pipelined, per shard on a
   * cluster); returns seq and presence per device.
   */
  async appendInboxes(devices: readonly string[], entry: NewEntry, now = Date.now()): Promise<InboxAppend[]> {
    const argv = this.argv(entry, this.limits.inboxMaxLen, now);
    const replies = await Promise.all(
      devices.map((device) => {
        const k = this.keys.inbox(device);
        return this.redis.heraldAppend(k.stream, k.seq, this.keys.presence(device), ...argv);
      }),
    );
    return replies.map((reply, i) => {
      const [seq, ...nodes] = reply;
      return { device: devices[i] as string, seq: Number(seq), nodes: nodes as string[] };
    });
  }

  async appendTopic(topic: string, entry: NewEntry, now = Date.now()): Promise<number> {
    return this.appendShared(this.keys.topic(topic), entry, now);
  }

  async appendBroadcast(entry: NewEntry, now = Date.now()): Promise<number> {
    return this.appendShared(this.keys.broadcast(), entry, now);
  }

  private async appendShared(k: StreamKeys, entry: NewEntry, now: number): Promise<number> {
    const [seq] = await this.redis.heraldAppend(
      k.stream,
      k.seq,
      this.keys.noPresence(k),
      ...this.argv(entry, this.limits.topicMaxLen, now),
    );
    return Number(seq);
  }

  private argv(entry: NewEntry, maxLen: number, now: number): (string | number)[] {
    return [entry.id, entry.data, entry.ts, entry.exp, maxLen, now, this.limits.keepMs];
  }

  /** Keys of a wire stream name as seen by one device. */
  keysOf(stream: string, device: string): StreamKeys {
    const s = parseStream(stream);
    if (!s) throw new Error(`unknown stream ${stream}`);
    if (s.kind === 'inbox') return this.keys.inbox(device);
    if (s.kind === 'broadcast') return this.keys.broadcast();
    return this.keys.topic(s.topic);
  }

  /** Entries after `after` (exclusive), at most `count`, with the stream's head. */
  async read(k: StreamKeys, after: number, count: number): Promise<StreamRead> {
    const [head, raw] = await this.redis.heraldRead(k.stream, k.seq, `${after + 1}-0`, count);
    return { head: Number(head), entries: raw.map(decodeEntry) };
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
