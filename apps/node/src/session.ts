import {
  BROADCAST,
  type ClientFrame,
  CloseCode,
  type Cursors,
  FrameError,
  INBOX,
  parseClientFrame,
  TOPIC_PREFIX,
  topicAllowed,
  topicStream,
} from '@herald/protocol';
import { type DeviceIdentity, TokenError } from './auth.js';
import type { Expiring, SessionDeps } from './ports.js';
import { Requests } from './requests.js';
import { Stats } from './stats.js';
import { StreamState } from './stream-state.js';
import { type Peer, PRESENCE_TRANSPORT, type Transport } from './transport.js';

const RESOLVED: Promise<void> = Promise.resolve();

function helloTimeout(s: Session): void {
  s.close(CloseCode.HelloTimeout, 'hello timeout');
}

/**
 * One device connection, whatever carries it: hello and auth, frames handled one at a time in
 * order (rate-limited, a bounded number in flight), acks, subscriptions, token refresh and
 * expiry. Acks and subscriptions are the `Requests` base (requests.ts), delivery (streams, replay
 * then live, the bounded outbox) the `Delivery` base under it (delivery.ts); the wire is a
 * `Transport` (ws-transport.ts), which calls the `Peer` methods below.
 */
export class Session extends Requests implements Peer, Expiring {
  private chain: Promise<void> = RESOLVED;
  /** Frames received and not yet handled. */
  private queued = 0;
  private helloTimer: NodeJS.Timeout | undefined = undefined;
  /** Bucket of this session's token expiry in `deps.expiries`, or -1. */
  private expiryKey = -1;
  private userCounted = false;
  /** The batched hello in flight, if any (a presence removal waits for it). */
  private opening: Promise<unknown> | undefined = undefined;
  /** Frame rate limit: a token bucket of `frameRate` per second, burst twice that. */
  private frameTokens: number;
  private frameAt = performance.now();
  /** The browser `Origin` of the connection, if any: checked against the app's at hello. */
  origin: string | undefined = undefined;

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
    // HS256 (the usual token) is checked without a promise: one async layer instead of five
    // per hello (issue #14, BENCHMARKS.md); other algorithms and refusals go the async way.
    let id: DeviceIdentity | undefined;
    try {
      id = this.deps.verifier.verifyNow?.(token);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      this.close(err.expired ? CloseCode.TokenExpired : CloseCode.Unauthorized, err.message);
      return;
    }
    if (!id) id = await this.verify(token);
    if (!id || this.closed) return;
    await this.accept(id, cursors);
  }

  /**
   * Opens the device's streams and sends `welcome`, then replays every stream that is behind:
   * the `hello` of WebSocket, and the start of an SSE stream or a long-poll, whose token the
   * route verified before answering. `extra`: topics the request asks for on top of the
   * durable subscriptions (SSE and long-poll `topics`, already checked against the claims). On
   * SSE and long-poll a stream without a stored cursor gets one at its resume point
   * (`initCursor`), so HTTP acks, which count from the stored cursor, count it. Resolves false
   * if the session closed.
   */
  async accept(id: DeviceIdentity, cursors: Cursors, extra: readonly string[] = []): Promise<boolean> {
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    // The token's app: its streams, hub, broker and limits from here on (docs/tenancy.md).
    const { apps } = this.deps;
    const deps = apps.scope(id.app);
    if (!deps) {
      this.close(CloseCode.Unauthorized, `invalid token: unknown app ${id.app}`);
      return false;
    }
    if (!apps.originAllowed(id.app, this.origin)) {
      this.close(CloseCode.Unauthorized, `origin ${this.origin} is not allowed for app ${id.app}`);
      return false;
    }
    const refused = apps.admit(id.app);
    if (refused) {
      this.close(refused.code, refused.reason);
      return false;
    }
    this.deps = deps;
    const { registry, limits } = deps;
    if (!registry.addUser(id.user, limits.maxConnectionsPerUser)) {
      this.close(
        CloseCode.Capacity,
        `at most ${limits.maxConnectionsPerUser} connections per user on this node`,
      );
      return false;
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
    const transport = PRESENCE_TRANSPORT[this.transportKind];
    const opening = deps.presences.open(id.device, id.user, this.remote, transport);
    this.opening = opening;
    const session = await opening.finally(() => {
      this.opening = undefined;
    });
    if (this.closed) return false;
    for (const _ in session.cursors) {
      this.serverCursors = session.cursors;
      break;
    }
    const stored = this.serverCursors;
    let wanted = session.topics;
    if (extra.length > 0) wanted = [...new Set([...wanted, ...extra])];
    const topics = wanted.filter((t) => topicAllowed(id.topics, t)).slice(0, limits.maxTopics);
    const topicNames = topics.map(topicStream);
    let heads: number[] = [];
    if (topics.length > 0) {
      await Promise.all(topics.map((t) => deps.topics.ref(t)));
      if (this.closed) {
        for (const t of topics) deps.topics.unref(t);
        return false;
      }
      // Without a cursor, a topic starts at its head; with one past it, at a reset (below).
      heads = await deps.streams.heads(topicNames.map((n) => deps.streams.keysOf(n, id.device)));
      if (this.closed) {
        for (const t of topics) deps.topics.unref(t);
        return false;
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
    for (const [i, name] of topicNames.entries()) {
      const cursor = cursors[name] ?? stored[name] ?? (heads[i] as number);
      const st = new StreamState(name, cursor, stored[name]);
      this.topicMap().set(name, st);
      registry.join(name, this);
      welcome[name] = { cursor };
      replay.push(st);
    }
    this.welcoming = false;
    // Online in its topics (the presence API's topic counts), with this turn's other hellos.
    deps.presences.join(id.device, topics);
    this.send({
      type: 'welcome',
      node: deps.nodeId,
      device: id.device,
      user: id.user,
      heartbeatMs: limits.heartbeatMs,
      streams: welcome,
    });
    deps.log.debug({ conn: this.connId, app: id.app, device: id.device, remote: this.remote }, 'hello');
    this.resetIfAhead(this.inbox, session.inboxHead);
    this.resetIfAhead(this.bcast, session.broadcastHead);
    for (const [i, name] of topicNames.entries()) this.resetIfAhead(this.topics!.get(name)!, heads[i]!);
    if (this.transportKind !== 'ws') {
      // HTTP acks count from the stored cursor: a stream read without one gets one where it
      // starts (as a subscribe does).
      const unset = [...this.streams()].filter((st) => st.name !== INBOX && stored[st.name] === undefined);
      for (const st of unset) st.acked = st.sent;
      void Promise.all(unset.map((st) => deps.devices.initCursor(id.device, st.name, st.sent))).catch(
        (err: Error) => deps.log.warn({ conn: this.connId, err: err.message }, 'cursor init failed'),
      );
    }
    const syncs = this.earlyBell ? [...this.streams()] : replay;
    this.earlyBell = false;
    if (this.transportKind === 'poll') this.replayed = Promise.all(syncs.map((st) => this.sync(st)));
    else for (const st of syncs) void this.sync(st);
    return !this.closed;
  }

  /** The topics this session reads (undefined for none): refreshed in their online sets by the heartbeat. */
  topicNames(): string[] | undefined {
    if (!this.topics || this.topics.size === 0) return undefined;
    return [...this.topics.keys()].map((name) => name.slice(TOPIC_PREFIX.length));
  }

  /** Long-poll: settles once the replay started at welcome has caught up (or stopped). */
  replayed: Promise<unknown> = RESOLVED;

  private async refresh(token: string): Promise<void> {
    const id = await this.verify(token);
    if (!id || this.closed || !this.identity) return;
    if (
      id.device !== this.identity.device ||
      id.user !== this.identity.user ||
      id.app !== this.identity.app
    ) {
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
    const topics = this.topicNames();
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
          .close(device, {
            user: this.identity?.user,
            transport: PRESENCE_TRANSPORT[this.transportKind],
            topics,
          })
          .catch((err: Error) => deps.log.warn({ err: err.message }, 'presence remove failed'));
      // A hello still waiting for its batch writes presence later: remove it after that.
      if (this.opening) void this.opening.then(remove, remove);
      else void remove();
    }
  }
}
