import type { Socket } from 'node:net';
import {
  BROADCAST,
  type ClientFrame,
  CloseCode,
  type Cursors,
  encodeNotification,
  FrameError,
  type GapFrame,
  INBOX,
  parseClientFrame,
  type ServerFrame,
  TOPIC_PREFIX,
  topicAllowed,
  topicStream,
} from '@herald/protocol';
import type { NewEntry } from '@herald/store';
import type { RawData, WebSocket } from 'ws';
import { type DeviceIdentity, TokenError } from './auth.js';
import type { NodeContext } from './context.js';
import type { Expiring } from './expiry.js';
import { closeReason, Stats } from './stats.js';
import { StreamState } from './stream-state.js';
import { WireFrame, writeFrame } from './wire.js';

/** Frames queued behind a slow handler (hello, subscribe) before the peer is cut off. */
const MAX_QUEUED_FRAMES = 64;
/** Retry delay of a replay that failed on a Redis error. */
const RESYNC_RETRY_MS = 1000;
/** How long a replay waits for the socket buffer to drain before calling the peer slow. */
const DRAIN_WAIT_MS = 10_000;

let nextConnId = 0;

const RESOLVED: Promise<void> = Promise.resolve();
const NO_CURSORS: Readonly<Record<string, number>> = Object.freeze({});
const kClient = Symbol('herald.client');

type Tagged = WebSocket & { [kClient]: Client };

// Socket listeners shared by every connection (`this` is the socket): no closures per connection.
function onWsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  (this as Tagged)[kClient].onMessage(data, isBinary);
}
function onWsPong(this: WebSocket): void {
  (this as Tagged)[kClient].alive = true;
}
function onWsClose(this: WebSocket, code: number): void {
  (this as Tagged)[kClient].onClose(code);
}
function onWsError(this: WebSocket, err: Error): void {
  (this as Tagged)[kClient].onError(err);
}

/**
 * One WebSocket connection: hello and auth, its streams (inbox, broadcast, topics), replay
 * from cursors then live delivery, acks. Frames are handled one at a time, in order.
 */
export class Client implements Expiring {
  /** Number of this connection on this node, for logs. */
  readonly connNo = ++nextConnId;
  identity: DeviceIdentity | undefined;
  /** The inbox and broadcast streams (set at welcome), and topic streams when there are any. */
  private inbox: StreamState | undefined;
  private bcast: StreamState | undefined;
  private topics: Map<string, StreamState> | undefined;
  alive = true;
  private closed = false;
  /** Between joining the hub and welcome: a doorbell then only sets `earlyBell`. */
  private welcoming = false;
  private earlyBell = false;
  private chain: Promise<void> = RESOLVED;
  private queued = 0;
  private helloTimer: NodeJS.Timeout | undefined;
  /** Bucket of this client's token expiry in `ctx.expiries`, or -1. */
  private expiryKey = -1;
  private serverCursors: Readonly<Record<string, number>> = NO_CURSORS;
  private userCounted = false;
  private corked = false;
  /** The batched hello in flight, if any (a presence removal waits for it). */
  private opening: Promise<unknown> | undefined;
  /** Frame rate limit: a token bucket of `frameRate` per second, burst twice that. */
  private frameTokens: number;
  private frameAt = performance.now();

  constructor(
    private readonly ctx: NodeContext,
    private readonly socket: WebSocket,
    readonly remote: string,
  ) {
    this.frameTokens = ctx.limits.frameRate * 2;
  }

  start(): void {
    this.ctx.hub.connections.add(this);
    this.ctx.stats.connects++;
    this.helloTimer = setTimeout(
      () => this.close(CloseCode.HelloTimeout, 'hello timeout'),
      this.ctx.limits.helloTimeoutMs,
    );
    const ws = this.socket as Tagged;
    ws[kClient] = this;
    ws.on('message', onWsMessage);
    ws.on('pong', onWsPong);
    ws.on('close', onWsClose);
    ws.on('error', onWsError);
  }

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

  private topicMap(): Map<string, StreamState> {
    if (!this.topics) this.topics = new Map();
    return this.topics;
  }

  private get topicCount(): number {
    return this.topics?.size ?? 0;
  }

  onClose(code: number): void {
    this.cleanup(code === 1009 ? 'message_too_big' : 'peer');
  }

  onError(err: Error): void {
    this.ctx.log.debug({ conn: this.connId, err: err.message }, 'socket error');
  }

  private takeFrame(): boolean {
    const now = performance.now();
    const rate = this.ctx.limits.frameRate;
    this.frameTokens = Math.min(rate * 2, this.frameTokens + ((now - this.frameAt) / 1000) * rate);
    this.frameAt = now;
    if (this.frameTokens < 1) return false;
    this.frameTokens -= 1;
    return true;
  }

  // ---- inbound ----

  onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true;
    if (!this.takeFrame()) {
      this.close(CloseCode.RateLimited, 'frame rate exceeded');
      return;
    }
    if (isBinary) {
      this.close(CloseCode.BadFrame, 'binary frames are not supported');
      return;
    }
    const parsed = parseClientFrame(data.toString());
    Stats.bump(this.ctx.stats.framesIn, parsed.ok ? parsed.frame.type : 'invalid');
    if (!parsed.ok) {
      this.close(CloseCode.BadFrame, parsed.reason);
      return;
    }
    if (++this.queued > MAX_QUEUED_FRAMES) {
      this.close(CloseCode.RateLimited, 'too many frames in flight');
      return;
    }
    const p: Promise<void> = this.chain
      .then(() => (this.closed ? undefined : this.handle(parsed.frame)))
      .catch((err: Error) => {
        this.ctx.log.error({ conn: this.connId, err }, 'frame handler failed');
        this.close(CloseCode.Internal, 'internal error');
      })
      .finally(() => {
        this.queued--;
        // An idle connection keeps no promise chain of its own.
        if (this.chain === p) this.chain = RESOLVED;
      });
    this.chain = p;
  }

  private async handle(f: ClientFrame): Promise<void> {
    if (f.type === 'hello')
      return this.identity
        ? this.error(FrameError.AlreadyHello, 'hello was already accepted')
        : this.hello(f.token, f.cursors ?? {});
    if (!this.identity) {
      this.close(CloseCode.BadFrame, `${f.type} before hello`);
      return;
    }
    switch (f.type) {
      case 'ack':
        return this.ack(f.stream, f.seq);
      case 'subscribe':
        return this.subscribe(f.topic, f.cursor, true);
      case 'unsubscribe':
        return this.unsubscribe(f.topic, true);
      case 'ping':
        this.send({ type: 'pong' });
        return;
      case 'refresh':
        return this.refresh(f.token);
    }
  }

  private async verify(token: string): Promise<DeviceIdentity | undefined> {
    try {
      return await this.ctx.verifier.verify(token);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      this.close(err.expired ? CloseCode.TokenExpired : CloseCode.Unauthorized, err.message);
      return undefined;
    }
  }

  private async hello(token: string, cursors: Cursors): Promise<void> {
    const id = await this.verify(token);
    if (!id || this.closed) return;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    const { ctx } = this;
    if (!ctx.hub.addUser(id.user, ctx.limits.maxConnectionsPerUser)) {
      this.close(
        CloseCode.Capacity,
        `at most ${ctx.limits.maxConnectionsPerUser} connections per user on this node`,
      );
      return;
    }
    this.userCounted = true;
    this.identity = id;
    this.armExpiry();
    // In the hub before presence is written and before any head is read: a doorbell from now
    // on reaches this client. Until its streams exist (welcome), it only sets `earlyBell`,
    // and every stream is then re-read from its cursor.
    this.welcoming = true;
    ctx.hub.addDevice(id.device, this);
    ctx.hub.join(BROADCAST, this);
    // Presence, registry, topics, cursors, inbox head (read with the presence write) and the
    // broadcast head (read after it), batched with the other hellos of this turn.
    const opening = ctx.hellos.open(id.device, id.user, this.remote);
    this.opening = opening;
    const session = await opening.finally(() => {
      this.opening = undefined;
    });
    if (this.closed) return;
    let any = false;
    for (const _ in session.cursors) {
      any = true;
      break;
    }
    if (any) this.serverCursors = session.cursors;
    const topics = session.topics.filter((t) => topicAllowed(id.topics, t)).slice(0, ctx.limits.maxTopics);
    const topicNames = topics.map(topicStream);
    let heads: number[] = [];
    if (topics.length > 0) {
      await Promise.all(topics.map((t) => ctx.broker.ref(t)));
      if (this.closed) {
        for (const t of topics) ctx.broker.unref(t);
        return;
      }
      // Without a cursor, a topic starts at its head.
      const needHead = topicNames.filter(
        (n) => cursors[n] === undefined && this.serverCursors[n] === undefined,
      );
      heads = await ctx.streams.heads(needHead.map((n) => ctx.streams.keysOf(n, id.device)));
      if (this.closed) {
        for (const t of topics) ctx.broker.unref(t);
        return;
      }
    }
    const welcome: Record<string, { cursor: number }> = {};
    // A stream whose cursor is its head has nothing to replay: what is appended later rings
    // this client. Others are read from their cursor (replay, trimmed or reset).
    const replay: StreamState[] = [];
    const inboxCursor = cursors[INBOX] ?? this.serverCursors[INBOX] ?? 0;
    this.inbox = new StreamState(INBOX, inboxCursor);
    welcome[INBOX] = { cursor: inboxCursor };
    if (inboxCursor !== session.inboxHead) replay.push(this.inbox);
    const bcastCursor = cursors[BROADCAST] ?? this.serverCursors[BROADCAST] ?? session.broadcastHead;
    this.bcast = new StreamState(BROADCAST, bcastCursor);
    welcome[BROADCAST] = { cursor: bcastCursor };
    if (bcastCursor !== session.broadcastHead) replay.push(this.bcast);
    let h = 0;
    for (const name of topicNames) {
      const cursor = cursors[name] ?? this.serverCursors[name] ?? (heads[h++] as number);
      const st = new StreamState(name, cursor);
      this.topicMap().set(name, st);
      ctx.hub.join(name, this);
      welcome[name] = { cursor };
      replay.push(st);
    }
    this.welcoming = false;
    this.send({
      type: 'welcome',
      node: ctx.nodeId,
      device: id.device,
      user: id.user,
      heartbeatMs: ctx.limits.heartbeatMs,
      streams: welcome,
    });
    ctx.log.debug({ conn: this.connId, device: id.device, remote: this.remote }, 'hello');
    if (this.earlyBell) {
      this.earlyBell = false;
      for (const st of this.streams()) void this.sync(st);
    } else for (const st of replay) void this.sync(st);
  }

  private async refresh(token: string): Promise<void> {
    const id = await this.verify(token);
    if (!id || this.closed || !this.identity) return;
    if (id.device !== this.identity.device || id.user !== this.identity.user) {
      this.close(CloseCode.Unauthorized, 'refreshed token is for another device');
      return;
    }
    this.identity = id;
    this.armExpiry();
  }

  /** Closes the connection when its token expires (checked once a second for all connections). */
  private armExpiry(): void {
    const { expiries } = this.ctx;
    if (this.expiryKey >= 0) expiries.remove(this, this.expiryKey);
    this.expiryKey = expiries.add(this, this.identity?.exp ?? 0);
  }

  /** Called by `ctx.expiries` when the token expired. */
  expire(): void {
    this.expiryKey = -1;
    this.close(CloseCode.TokenExpired, 'token expired');
  }

  private ack(stream: string, seq: number): void {
    const st = this.stream(stream);
    if (!st) {
      this.error(FrameError.UnknownStream, `not delivering ${stream} on this connection`);
      return;
    }
    if (seq > st.sent) {
      this.error(FrameError.BadAck, `ack ${seq} is past the last sent seq ${st.sent}`);
      return;
    }
    if (seq <= st.acked) return;
    const ids = st.ack(seq);
    this.ctx.stats.acks += ids.length;
    for (const id of ids) this.ctx.flusher.acked(id);
    this.ctx.flusher.cursor(this.identity!.device, stream, seq);
  }

  private async subscribe(topic: string, cursor: number | undefined, durable: boolean): Promise<void> {
    const { ctx } = this;
    const id = this.identity!;
    if (!topicAllowed(id.topics, topic)) {
      this.error(FrameError.TopicForbidden, `token does not allow topic ${topic}`, topic);
      return;
    }
    const name = topicStream(topic);
    const existing = this.topics?.get(name);
    if (existing) {
      this.send({ type: 'subscribed', topic, cursor: existing.sent });
      return;
    }
    if (this.topicCount >= ctx.limits.maxTopics) {
      this.error(FrameError.TooManyTopics, `at most ${ctx.limits.maxTopics} topics per connection`, topic);
      return;
    }
    if (durable) await ctx.devices.subscribe(id.device, topic);
    // Subscribed to the doorbell before the stream is read: nothing falls between the two.
    await ctx.broker.ref(topic);
    const keys = ctx.streams.keysOf(name, id.device);
    let start = cursor ?? this.serverCursors[name] ?? (await ctx.devices.cursor(id.device, name));
    if (start === undefined) {
      start = await ctx.streams.head(keys);
      await ctx.devices.initCursor(id.device, name, start);
    }
    if (this.closed || this.topics?.has(name)) {
      ctx.broker.unref(topic);
      return;
    }
    const st = new StreamState(name, start);
    this.topicMap().set(name, st);
    ctx.hub.join(name, this);
    this.send({ type: 'subscribed', topic, cursor: start });
    void this.sync(st);
  }

  private async unsubscribe(topic: string, durable: boolean): Promise<void> {
    const name = topicStream(topic);
    if (durable) await this.ctx.devices.unsubscribe(this.identity!.device, topic);
    if (this.topics?.delete(name)) {
      if (this.topics.size === 0) this.topics = undefined;
      this.ctx.hub.leave(name, this);
      this.ctx.broker.unref(topic);
    }
    if (this.serverCursors[name] !== undefined) {
      const { [name]: _, ...rest } = this.serverCursors;
      this.serverCursors = rest;
    }
    this.send({ type: 'unsubscribed', topic });
  }

  /** Subscription changed by the backend (topics admin API) while this device is connected. */
  control(op: 'sub' | 'unsub', topic: string): void {
    this.chain = this.chain
      .then(() =>
        this.closed || !this.identity
          ? undefined
          : op === 'sub'
            ? this.subscribe(topic, undefined, false)
            : this.unsubscribe(topic, false),
      )
      .catch((err: Error) => this.ctx.log.warn({ conn: this.connId, err: err.message }, 'control failed'));
  }

  // ---- delivery ----

  /** A live entry from a doorbell. Delivered directly when it is the next seq, else read from the stream. */
  offer(stream: string, seq: number, entry: NewEntry, frame: string | WireFrame): void {
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
    if (seq !== st.sent + 1) {
      void this.sync(st);
      return;
    }
    if (entry.exp <= Date.now()) {
      this.gap(st, seq + 1, 'expired');
      return;
    }
    if (this.sendRaw(frame)) {
      st.recordSent(seq, entry.id);
      this.ctx.flusher.delivered(entry.id);
      this.delivered(st.name);
      this.ctx.stats.latency((Date.now() - entry.ts) / 1000);
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
  private async sync(st: StreamState): Promise<void> {
    if (st.syncing) {
      st.pending = true;
      return;
    }
    st.syncing = true;
    const { ctx } = this;
    const batch = ctx.limits.replayBatch;
    try {
      const keys = ctx.streams.keysOf(st.name, this.identity!.device);
      while (!this.closed && this.stream(st.name) === st) {
        st.pending = false;
        const { head, entries } = await ctx.streams.read(keys, st.sent, batch);
        if (this.closed || this.stream(st.name) !== st) return;
        if (head < st.sent) {
          // The stream was recreated after it expired: its seqs start again.
          this.send({ type: 'gap', stream: st.name, after: st.sent, next: 1, reason: 'reset' });
          st.reset();
          continue;
        }
        if (entries.length === 0) {
          if (head > st.sent) this.gap(st, head + 1, 'trimmed');
          if (st.pending) continue;
          return;
        }
        const first = entries[0]!.seq;
        if (first > st.sent + 1) this.gap(st, first, 'trimmed');
        const now = Date.now();
        let expiredAfter = -1;
        for (const e of entries) {
          if (e.seq <= st.sent) continue;
          if (e.exp <= now) {
            if (expiredAfter < 0) expiredAfter = st.sent;
            st.sent = e.seq;
            continue;
          }
          if (expiredAfter >= 0) {
            this.send({
              type: 'gap',
              stream: st.name,
              after: expiredAfter,
              next: e.seq,
              reason: 'expired',
            });
            expiredAfter = -1;
          }
          if (!this.sendRaw(encodeNotification(st.json, e.seq, e.id, e.ts, e.data))) return;
          st.recordSent(e.seq, e.id);
          ctx.flusher.delivered(e.id);
          this.delivered(st.name);
          ctx.stats.replayed++;
        }
        if (expiredAfter >= 0)
          this.send({
            type: 'gap',
            stream: st.name,
            after: expiredAfter,
            next: st.sent + 1,
            reason: 'expired',
          });
        if (entries.length < batch && !st.pending) return;
        if (!(await this.drained())) return;
      }
    } catch (err) {
      ctx.log.warn(
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
    const d = this.ctx.stats.deliveries;
    if (stream === INBOX) d.inbox++;
    else if (stream === BROADCAST) d.broadcast++;
    else d.topic++;
    Stats.bump(this.ctx.stats.framesOut, 'notification');
  }

  private gap(st: StreamState, next: number, reason: GapFrame['reason']): void {
    this.send({ type: 'gap', stream: st.name, after: st.sent, next, reason });
    st.sent = next - 1;
  }

  /** Waits (bounded) until the socket buffer is under half the slow-consumer bound. */
  private async drained(): Promise<boolean> {
    const limit = this.ctx.limits.slowConsumerBytes / 2;
    const deadline = Date.now() + DRAIN_WAIT_MS;
    while (!this.closed && this.socket.bufferedAmount > limit) {
      if (Date.now() > deadline) {
        this.ctx.stats.slowConsumers++;
        this.close(CloseCode.SlowConsumer, 'slow consumer');
        return false;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return !this.closed;
  }

  // ---- outbound ----

  private error(code: string, message: string, topic?: string): void {
    this.send(
      topic === undefined ? { type: 'error', code, message } : { type: 'error', code, message, topic },
    );
  }

  send(frame: ServerFrame): boolean {
    if (frame.type === 'gap') Stats.bump(this.ctx.stats.gaps, frame.reason);
    Stats.bump(this.ctx.stats.framesOut, frame.type);
    return this.sendRaw(JSON.stringify(frame));
  }

  /** Writes a frame unless the peer reads too slowly, in which case it is cut off (bounded memory). */
  sendRaw(frame: string | WireFrame): boolean {
    if (this.closed) return false;
    if (this.socket.bufferedAmount > this.ctx.limits.slowConsumerBytes) {
      this.ctx.stats.slowConsumers++;
      this.close(CloseCode.SlowConsumer, 'slow consumer');
      return false;
    }
    this.cork();
    if (frame instanceof WireFrame) writeFrame(this.socket, frame);
    else this.socket.send(frame);
    return true;
  }

  /**
   * Holds this socket's writes until the end of the tick, so frames sent to it in one tick (a
   * burst of doorbells parsed from one Redis read, or a replay batch) leave in one writev
   * instead of one syscall each. ws corks per frame itself; cork calls nest.
   */
  private cork(): void {
    if (this.corked) return;
    const raw = (this.socket as unknown as { _socket?: Socket })._socket;
    if (!raw) return;
    this.corked = true;
    raw.cork();
    process.nextTick(() => {
      this.corked = false;
      raw.uncork();
    });
  }

  ping(): void {
    if (!this.closed) this.socket.ping();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.ctx.log.debug({ conn: this.connId, code, reason, remote: this.remote }, 'closing');
    this.cleanup(closeReason(code));
    this.socket.close(code, reason);
    // A peer that never answers the close handshake is cut after a bound.
    setTimeout(() => this.socket.terminate(), 5000).unref();
  }

  /** Cuts the socket without a close handshake (dead peer, drain deadline). */
  terminate(reason = 'heartbeat'): void {
    this.cleanup(reason);
    this.socket.terminate();
  }

  /** Idempotent: unregisters the client from the hub, broker and presence. */
  private cleanup(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    Stats.bump(this.ctx.stats.disconnects, reason);
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    const { ctx } = this;
    if (this.expiryKey >= 0) ctx.expiries.remove(this, this.expiryKey);
    this.expiryKey = -1;
    ctx.hub.connections.delete(this);
    if (this.userCounted && this.identity) ctx.hub.removeUser(this.identity.user);
    // Joined at hello, before its state existed.
    ctx.hub.leave(BROADCAST, this);
    if (this.topics)
      for (const name of this.topics.keys()) {
        ctx.hub.leave(name, this);
        ctx.broker.unref(name.slice(TOPIC_PREFIX.length));
      }
    this.inbox = undefined;
    this.bcast = undefined;
    this.topics = undefined;
    const device = this.identity?.device;
    if (device && ctx.hub.removeDevice(device, this)) {
      const remove = () =>
        ctx.hellos
          .close(device)
          .catch((err: Error) => ctx.log.warn({ err: err.message }, 'presence remove failed'));
      // A hello still waiting for its batch writes presence later: remove it after that.
      if (this.opening) void this.opening.then(remove, remove);
      else void remove();
    }
  }
}
