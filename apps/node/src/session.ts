import {
  BROADCAST,
  type ClientFrame,
  CloseCode,
  type Cursors,
  FrameError,
  INBOX,
  isValidTopic,
  parseClientFrame,
  TOPIC_PREFIX,
  topicAllowed,
  topicStream,
} from '@herald/protocol';
import { type DeviceIdentity, TokenError } from './auth.js';
import { Delivery } from './delivery.js';
import type { Expiring, SessionDeps } from './ports.js';
import { Stats } from './stats.js';
import { StreamState } from './stream-state.js';
import type { Peer, Transport } from './transport.js';

const RESOLVED: Promise<void> = Promise.resolve();
const NO_CURSORS: Readonly<Record<string, number>> = Object.freeze({});

function helloTimeout(s: Session): void {
  s.close(CloseCode.HelloTimeout, 'hello timeout');
}

/**
 * One device connection, whatever carries it: hello and auth, frames handled one at a time in
 * order (rate-limited, a bounded number in flight), acks, subscriptions, token refresh and
 * expiry. Delivery (streams, replay then live, the bounded outbox) is the `Delivery` base; the
 * wire is a `Transport` (ws-transport.ts), which calls the `Peer` methods below.
 */
export class Session extends Delivery implements Peer, Expiring {
  private chain: Promise<void> = RESOLVED;
  /** Frames received and not yet handled. */
  private queued = 0;
  private helloTimer: NodeJS.Timeout | undefined = undefined;
  /** Bucket of this session's token expiry in `deps.expiries`, or -1. */
  private expiryKey = -1;
  /** The device's stored cursors, read at hello. */
  private serverCursors: Readonly<Record<string, number>> = NO_CURSORS;
  private userCounted = false;
  /** The batched hello in flight, if any (a presence removal waits for it). */
  private opening: Promise<unknown> | undefined = undefined;
  /** Frame rate limit: a token bucket of `frameRate` per second, burst twice that. */
  private frameTokens: number;
  private frameAt = performance.now();

  constructor(deps: SessionDeps, transport: Transport<unknown>, conn: unknown, remote: string) {
    super(deps, transport, conn, remote);
    this.frameTokens = deps.limits.frameRate * 2;
  }

  /** Registers the session and starts the hello deadline; the transport delivers frames from now on. */
  start(): void {
    this.deps.registry.connections.add(this);
    this.deps.stats.connects++;
    this.helloTimer = setTimeout(helloTimeout, this.deps.limits.helloTimeoutMs, this);
  }

  private get topicCount(): number {
    return this.topics?.size ?? 0;
  }

  private topicMap(): Map<string, StreamState> {
    if (!this.topics) this.topics = new Map();
    return this.topics;
  }

  // ---- from the transport (Peer) ----

  heard(): void {
    this.alive = true;
  }

  ended(label: string): void {
    this.cleanup(label);
  }

  failed(err: Error): void {
    this.deps.log.debug({ conn: this.connId, err: err.message }, 'transport error');
  }

  refuse(reason: string): void {
    this.alive = true;
    if (!this.takeFrame()) this.close(CloseCode.RateLimited, 'frame rate exceeded');
    else this.close(CloseCode.BadFrame, reason);
  }

  private takeFrame(): boolean {
    const now = performance.now();
    const rate = this.deps.limits.frameRate;
    this.frameTokens = Math.min(rate * 2, this.frameTokens + ((now - this.frameAt) / 1000) * rate);
    this.frameAt = now;
    if (this.frameTokens < 1) return false;
    this.frameTokens -= 1;
    return true;
  }

  receive(text: string): void {
    this.alive = true;
    if (!this.takeFrame()) {
      this.close(CloseCode.RateLimited, 'frame rate exceeded');
      return;
    }
    const parsed = parseClientFrame(text);
    Stats.bump(this.deps.stats.framesIn, parsed.ok ? parsed.frame.type : 'invalid');
    if (!parsed.ok) {
      this.close(CloseCode.BadFrame, parsed.reason);
      return;
    }
    // At most a burst of frames waits for its answers (the rate limit alone lets one more in
    // every 1/frameRate s, however slow the handlers are): memory per connection stays bounded,
    // and a client within the documented rate and burst is never cut here.
    if (++this.queued > this.deps.limits.frameRate * 2) {
      this.close(CloseCode.RateLimited, 'too many frames in flight');
      return;
    }
    const p: Promise<void> = this.chain
      .then(() => (this.closed ? undefined : this.handle(parsed.frame)))
      .catch((err: Error) => {
        this.deps.log.error({ conn: this.connId, err }, 'frame handler failed');
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

  // ---- hello and tokens ----

  private async verify(token: string): Promise<DeviceIdentity | undefined> {
    try {
      return await this.deps.verifier.verify(token);
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
    const { deps } = this;
    const { registry, limits } = deps;
    if (!registry.addUser(id.user, limits.maxConnectionsPerUser)) {
      this.close(
        CloseCode.Capacity,
        `at most ${limits.maxConnectionsPerUser} connections per user on this node`,
      );
      return;
    }
    this.userCounted = true;
    this.identity = id;
    this.armExpiry();
    // In the hub before presence is written and before any head is read: a doorbell from now
    // on reaches this session. Until its streams exist (welcome), it only sets `earlyBell`,
    // and every stream is then re-read from its cursor.
    this.welcoming = true;
    registry.addDevice(id.device, this);
    registry.join(BROADCAST, this);
    // Presence, registry, topics, cursors, inbox head (read with the presence write) and the
    // broadcast head (read after it), batched with the other hellos of this turn.
    const opening = deps.presences.open(id.device, id.user, this.remote);
    this.opening = opening;
    const session = await opening.finally(() => {
      this.opening = undefined;
    });
    if (this.closed) return;
    for (const _ in session.cursors) {
      this.serverCursors = session.cursors;
      break;
    }
    const stored = this.serverCursors;
    const topics = session.topics.filter((t) => topicAllowed(id.topics, t)).slice(0, limits.maxTopics);
    const topicNames = topics.map(topicStream);
    let heads: number[] = [];
    if (topics.length > 0) {
      await Promise.all(topics.map((t) => deps.topics.ref(t)));
      if (this.closed) {
        for (const t of topics) deps.topics.unref(t);
        return;
      }
      // Without a cursor, a topic starts at its head.
      const needHead = topicNames.filter((n) => cursors[n] === undefined && stored[n] === undefined);
      heads = await deps.streams.heads(needHead.map((n) => deps.streams.keysOf(n, id.device)));
      if (this.closed) {
        for (const t of topics) deps.topics.unref(t);
        return;
      }
    }
    const welcome: Record<string, { cursor: number }> = {};
    // A stream whose cursor is its head has nothing to replay: what is appended later rings
    // this session. Others are read from their cursor (replay, trimmed or reset). Acks count
    // from the stored cursor (without one, 0 for the inbox, else the resume cursor).
    const replay: StreamState[] = [];
    const inboxCursor = cursors[INBOX] ?? stored[INBOX] ?? 0;
    this.inbox = new StreamState(INBOX, inboxCursor, stored[INBOX] ?? 0);
    welcome[INBOX] = { cursor: inboxCursor };
    if (inboxCursor !== session.inboxHead) replay.push(this.inbox);
    const bcastCursor = cursors[BROADCAST] ?? stored[BROADCAST] ?? session.broadcastHead;
    this.bcast = new StreamState(BROADCAST, bcastCursor, stored[BROADCAST]);
    welcome[BROADCAST] = { cursor: bcastCursor };
    if (bcastCursor !== session.broadcastHead) replay.push(this.bcast);
    let h = 0;
    for (const name of topicNames) {
      const cursor = cursors[name] ?? stored[name] ?? (heads[h++] as number);
      const st = new StreamState(name, cursor, stored[name]);
      this.topicMap().set(name, st);
      registry.join(name, this);
      welcome[name] = { cursor };
      replay.push(st);
    }
    this.welcoming = false;
    this.send({
      type: 'welcome',
      node: deps.nodeId,
      device: id.device,
      user: id.user,
      heartbeatMs: limits.heartbeatMs,
      streams: welcome,
    });
    deps.log.debug({ conn: this.connId, device: id.device, remote: this.remote }, 'hello');
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

  /** Closes the session when its token expires (checked once a second for all sessions). */
  private armExpiry(): void {
    const { expiries } = this.deps;
    if (this.expiryKey >= 0) expiries.remove(this, this.expiryKey);
    this.expiryKey = expiries.add(this, this.identity?.exp ?? 0);
  }

  /** Called by `deps.expiries` when the token expired. */
  expire(): void {
    this.expiryKey = -1;
    this.close(CloseCode.TokenExpired, 'token expired');
  }

  // ---- acks ----

  /**
   * Cumulative ack: moves the stored cursor and counts the entries up to `seq` as acked. Entries
   * sent on this connection are remembered (stream-state.ts); those the device had before it
   * resumed (its hello cursor past its stored cursor: read offline, e.g. from a Web Push) or
   * that were skipped are read back from the stream, at most `replayBatch` per ack.
   */
  private async ack(stream: string, seq: number): Promise<void> {
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
    const { deps } = this;
    const device = this.identity!.device;
    const from = st.acked;
    const unsentTo = Math.min(seq, (st.oldestUnacked() ?? st.sent + 1) - 1);
    const ids = st.ack(seq);
    deps.stats.acks += ids.length;
    for (const id of ids) deps.receipts.acked(id);
    deps.receipts.cursor(device, stream, seq);
    if (unsentTo > from) await this.ackUnsent(stream, device, from, unsentTo);
  }

  private async ackUnsent(stream: string, device: string, from: number, to: number): Promise<void> {
    const { deps } = this;
    try {
      const keys = deps.streams.keysOf(stream, device);
      const { entries } = await deps.streams.read(keys, from, Math.min(to - from, deps.limits.replayBatch));
      for (const e of entries) {
        if (e.seq > to) break;
        deps.stats.acks++;
        deps.receipts.acked(e.id);
      }
    } catch (err) {
      // Counts are statistics: a failed read leaves them short, the cursor has moved.
      deps.log.warn({ conn: this.connId, stream, err: (err as Error).message }, 'ack read failed');
    }
  }

  // ---- subscriptions ----

  private async subscribe(topic: string, cursor: number | undefined, durable: boolean): Promise<void> {
    const { deps } = this;
    const id = this.identity!;
    if (!isValidTopic(topic)) {
      this.error(
        FrameError.TopicInvalid,
        'topic must be dot-separated words of A-Z a-z 0-9 _ -, at most 128 characters',
        topic,
      );
      return;
    }
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
    if (this.topicCount >= deps.limits.maxTopics) {
      this.error(FrameError.TooManyTopics, `at most ${deps.limits.maxTopics} topics per connection`, topic);
      return;
    }
    if (durable) await deps.devices.subscribe(id.device, topic);
    // Subscribed to the doorbell before the stream is read: nothing falls between the two.
    await deps.topics.ref(topic);
    const keys = deps.streams.keysOf(name, id.device);
    let stored = this.serverCursors[name] ?? (await deps.devices.cursor(id.device, name));
    let start = cursor ?? stored;
    if (start === undefined) {
      start = await deps.streams.head(keys);
      await deps.devices.initCursor(id.device, name, start);
      stored = start;
    }
    if (this.closed || this.topics?.has(name)) {
      deps.topics.unref(topic);
      return;
    }
    const st = new StreamState(name, start, stored);
    this.topicMap().set(name, st);
    deps.registry.join(name, this);
    this.send({ type: 'subscribed', topic, cursor: start });
    void this.sync(st);
  }

  private async unsubscribe(topic: string, durable: boolean): Promise<void> {
    if (!isValidTopic(topic)) {
      this.error(
        FrameError.TopicInvalid,
        'topic must be dot-separated words of A-Z a-z 0-9 _ -, at most 128 characters',
        topic,
      );
      return;
    }
    const name = topicStream(topic);
    if (durable) await this.deps.devices.unsubscribe(this.identity!.device, topic);
    if (this.topics?.delete(name)) {
      if (this.topics.size === 0) this.topics = undefined;
      this.deps.registry.leave(name, this);
      this.deps.topics.unref(topic);
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
      .catch((err: Error) => this.deps.log.warn({ conn: this.connId, err: err.message }, 'control failed'));
  }

  // ---- end ----

  /** Idempotent: unregisters the session from the hub, broker and presence. */
  protected cleanup(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    const { deps } = this;
    Stats.bump(deps.stats.disconnects, reason);
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    if (this.expiryKey >= 0) deps.expiries.remove(this, this.expiryKey);
    this.expiryKey = -1;
    const { registry } = deps;
    registry.connections.delete(this);
    if (this.userCounted && this.identity) registry.removeUser(this.identity.user);
    // Joined at hello, before its state existed.
    registry.leave(BROADCAST, this);
    if (this.topics)
      for (const name of this.topics.keys()) {
        registry.leave(name, this);
        deps.topics.unref(name.slice(TOPIC_PREFIX.length));
      }
    this.inbox = undefined;
    this.bcast = undefined;
    this.topics = undefined;
    const device = this.identity?.device;
    if (device && registry.removeDevice(device, this)) {
      const remove = () =>
        deps.presences
          .close(device)
          .catch((err: Error) => deps.log.warn({ err: err.message }, 'presence remove failed'));
      // A hello still waiting for its batch writes presence later: remove it after that.
      if (this.opening) void this.opening.then(remove, remove);
      else void remove();
    }
  }
}
