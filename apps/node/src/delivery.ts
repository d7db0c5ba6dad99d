import {
  BROADCAST,
  CloseCode,
  CURSORS_TEXT_VERSION,
  closeLabel,
  encodeNotification,
  type GapFrame,
  INBOX,
  type ServerFrame,
} from '@herald/protocol';
import type { NewEntry } from '@herald/store';
import type { DeviceIdentity } from './auth.js';
import type { Listener, SessionDeps } from './ports.js';
import { Stats } from './stats.js';
import type { StreamState } from './stream-state.js';
import type { SharedFrame, Transport } from './transport.js';

/** Retry delay of a replay that failed on a Redis error. */
const RESYNC_RETRY_MS = 1000;
/** How long a replay waits for the transport buffer to drain before calling the peer slow. */
const DRAIN_WAIT_MS = 10_000;

let nextConnId = 0;

/**
 * The outbound half of a session, transport-neutral: a device's streams (inbox, broadcast, topics),
 * replay from cursors then live delivery with no gap and no duplicate at the seam, and the bounded
 * outbox (a peer whose transport buffer passes `slowConsumerBytes` is cut off). `Requests`
 * (acks, subscriptions) and `Session` (frames in, hello, tokens, close) extend it: one object per
 * connection, in three files by concern.
 */
export abstract class Delivery implements Listener {
  /** Number of this connection on this node, for logs and heartbeat slices. */
  readonly connNo = ++nextConnId;
  identity: DeviceIdentity | undefined = undefined;
  /** The inbox and broadcast streams (set at welcome), and topic streams when there are any. */
  protected inbox: StreamState | undefined = undefined;
  protected bcast: StreamState | undefined = undefined;
  protected topics: Map<string, StreamState> | undefined = undefined;
  /** Heard from since the last heartbeat ping. */
  alive = true;
  protected closed = false;
  /** Between joining the hub and welcome: a doorbell then only sets `earlyBell`. */
  protected welcoming = false;
  protected earlyBell = false;

  constructor(
    /** The node's default app until hello, then the app the token names (`Session.accept`). */
    protected deps: SessionDeps,
    private readonly transport: Transport<unknown>,
    private readonly conn: unknown,
    readonly remote: string,
  ) {}

  get connId(): string {
    return this.connNo.toString(36);
  }

  get device(): string | undefined {
    return this.identity?.device;
  }

  /** The connection's state of a stream, if it delivers it. */
  stream(name: string): StreamState | undefined {
    return name === INBOX ? this.inbox : name === BROADCAST ? this.bcast : this.topics?.get(name);
  }

  /** Every stream this connection delivers. */
  *streams(): IterableIterator<StreamState> {
    if (this.inbox) yield this.inbox;
    if (this.bcast) yield this.bcast;
    if (this.topics) yield* this.topics.values();
  }

  /** Unregisters the session (hub, broker, presence); called once, on the first close. */
  protected abstract cleanup(reason: string): void;

  /** Session-level work queued behind the frames in flight (see `Session.control`). */
  abstract control(op: 'sub' | 'unsub', topic: string): void;

  // ---- delivery ----

  /** A live entry from a doorbell. Delivered directly when it is the next seq, else read from the stream. */
  offer(stream: string, seq: number, entry: NewEntry, frame: string | SharedFrame): void {
    if (this.closed) return;
    const st = this.stream(stream);
    if (!st) {
      if (this.welcoming) this.earlyBell = true;
      return;
    }
    if (st.syncing) {
      st.pending = true;
      return;
    }
    if (seq <= st.sent) return;
    // HERALD_REDIS_MIN_REPLICAS: the doorbell's entry may not be on a replica yet; the read waits.
    if (seq !== st.sent + 1 || this.deps.streams.gated) {
      void this.sync(st);
      return;
    }
    if (entry.exp <= Date.now()) {
      this.gap(st, seq + 1, 'expired');
      return;
    }
    if (this.sendRaw(frame, stream, seq)) {
      st.recordSent(seq, entry.id);
      this.deps.receipts.delivered(entry.id, { device: this.identity!.device, stream, seq });
      this.delivered(st.name);
      this.deps.stats.latency((Date.now() - entry.ts) / 1000);
    }
  }

  /** Re-reads every stream from what was sent (after a missed doorbell window). */
  resync(): void {
    if (this.welcoming) this.earlyBell = true;
    for (const st of this.streams()) void this.sync(st);
  }

  /**
   * Replays a stream from `st.sent` until caught up. Live doorbells that arrive meanwhile only
   * set `pending`, which makes the loop read once more before it hands over to live delivery.
   */
  protected async sync(st: StreamState): Promise<void> {
    if (st.syncing) {
      st.pending = true;
      return;
    }
    st.syncing = true;
    const { deps } = this;
    const batch = deps.limits.replayBatch;
    try {
      const keys = deps.streams.keysOf(st.name, this.identity!.device);
      while (!this.closed && this.stream(st.name) === st) {
        st.pending = false;
        const { head, entries } = await deps.streams.read(keys, st.sent, batch);
        if (this.closed || this.stream(st.name) !== st) return;
        if (this.resetIfAhead(st, head)) continue;
        if (entries.length === 0) {
          if (head > st.sent) this.gap(st, head + 1, 'trimmed');
          if (st.pending) continue;
          return;
        }
        const first = entries[0]!.seq;
        if (first > st.sent + 1) this.gap(st, first, 'trimmed');
        const now = Date.now();
        // A run of entries not delivered (expired, or collapsed: a later entry holds their
        // collapseKey) is announced as one gap per reason once the run ends, so seqs stay contiguous.
        let skipAfter = -1;
        let skipReason: GapFrame['reason'] = 'expired';
        for (const e of entries) {
          if (e.seq <= st.sent) continue;
          const skip = e.exp <= now ? 'expired' : e.collapsed ? 'collapsed' : undefined;
          if (skipAfter >= 0 && skip !== skipReason) {
            this.send({ type: 'gap', stream: st.name, after: skipAfter, next: e.seq, reason: skipReason });
            skipAfter = -1;
          }
          if (skip) {
            if (skipAfter < 0) {
              skipAfter = st.sent;
              skipReason = skip;
            }
            st.sent = e.seq;
            continue;
          }
          const frame = encodeNotification(st.json, e.seq, e.id, e.ts, e.data, e.priority);
          if (!this.sendRaw(frame, st.name, e.seq)) return;
          st.recordSent(e.seq, e.id);
          deps.receipts.delivered(e.id, { device: this.identity!.device, stream: st.name, seq: e.seq });
          this.delivered(st.name);
          deps.stats.replayed++;
        }
        if (skipAfter >= 0)
          this.send({
            type: 'gap',
            stream: st.name,
            after: skipAfter,
            next: st.sent + 1,
            reason: skipReason,
          });
        if (entries.length < batch && !st.pending) return;
        if (!(await this.drained())) return;
      }
    } catch (err) {
      deps.log.warn(
        { conn: this.connId, stream: st.name, err: (err as Error).message },
        'replay failed; retrying',
      );
      const t = setTimeout(() => void this.sync(st), RESYNC_RETRY_MS);
      t.unref();
    } finally {
      st.syncing = false;
    }
  }

  private delivered(stream: string): void {
    const d = this.deps.stats.deliveries;
    if (stream === INBOX) d.inbox++;
    else if (stream === BROADCAST) d.broadcast++;
    else d.topic++;
    Stats.bump(this.deps.stats.framesOut, 'notification');
  }

  /**
   * A stream whose head is behind what the connection stands at was recreated after it expired
   * (or the client's cursor was never a seq of it): its seqs start again, announced as a `reset`
   * gap. Checked against the head read before `welcome`/`subscribed` as well as on every read, so
   * an entry appended right after the answer is not mistaken for one the client has.
   */
  protected resetIfAhead(st: StreamState, head: number): boolean {
    if (head >= st.sent) return false;
    this.send({ type: 'gap', stream: st.name, after: st.sent, next: 1, reason: 'reset' });
    st.reset();
    return true;
  }

  private gap(st: StreamState, next: number, reason: GapFrame['reason']): void {
    this.send({ type: 'gap', stream: st.name, after: st.sent, next, reason });
    st.sent = next - 1;
  }

  /** Waits (bounded) until the transport buffer is under half the slow-consumer bound. */
  private async drained(): Promise<boolean> {
    const limit = this.deps.limits.slowConsumerBytes / 2;
    const deadline = Date.now() + DRAIN_WAIT_MS;
    while (!this.closed && this.transport.buffered(this.conn) > limit) {
      if (Date.now() > deadline) {
        this.slow();
        return false;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return !this.closed;
  }

  // ---- outbound ----

  protected error(code: string, message: string, topic?: string): void {
    this.send(
      topic === undefined ? { type: 'error', code, message } : { type: 'error', code, message, topic },
    );
  }

  send(frame: ServerFrame): boolean {
    Stats.bump(this.deps.stats.framesOut, frame.type);
    if (frame.type !== 'gap') return this.sendRaw(JSON.stringify(frame));
    Stats.bump(this.deps.stats.gaps, frame.reason);
    return this.sendRaw(JSON.stringify(frame), frame.stream, frame.next - 1);
  }

  /**
   * Writes a frame unless the peer reads too slowly, in which case it is cut off (bounded memory).
   * `stream` and `seq`: where that stream stands once the frame is read (notifications, gaps).
   */
  sendRaw(frame: string | SharedFrame, stream?: string, seq?: number): boolean {
    if (this.closed) return false;
    if (this.transport.buffered(this.conn) > this.deps.limits.slowConsumerBytes) {
      this.slow();
      return false;
    }
    this.transport.write(this.conn, frame, stream, seq);
    return true;
  }

  /** Which transport carries this session. */
  get transportKind(): Transport['kind'] {
    return this.transport.kind;
  }

  /**
   * The cursors of every stream this session delivers (what was written), in the text form of an
   * SSE event's `id:` (`2.stream:seq,...`, @herald/protocol cursors.ts). With `moving`, that
   * stream comes last with its seq left off: the head an SSE connection keeps while only that
   * stream moves, appending each event's seq (sse-transport.ts). Built without an object.
   */
  cursorsText(moving?: string): string {
    let out = CURSORS_TEXT_VERSION;
    let first = true;
    for (const st of this.streams()) {
      if (st.name === moving) continue;
      out += `${first ? '' : ','}${st.name}:${st.sent}`;
      first = false;
    }
    return moving === undefined ? out : `${out}${first ? '' : ','}${moving}:`;
  }

  private slow(): void {
    this.deps.stats.slowConsumers++;
    this.close(CloseCode.SlowConsumer, 'slow consumer');
  }

  /** A transport-level liveness probe (the heartbeat); the answer sets `alive`. */
  ping(): void {
    if (!this.closed) this.transport.ping(this.conn);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.deps.log.debug({ conn: this.connId, code, reason, remote: this.remote }, 'closing');
    this.cleanup(closeLabel(code));
    this.transport.close(this.conn, code, reason);
  }

  /** Cuts the connection without a closing handshake (dead peer, drain deadline). */
  terminate(reason = 'heartbeat'): void {
    this.cleanup(reason);
    this.transport.terminate(this.conn);
  }
}
