// Over 400 lines on purpose: the client is one state machine (connection attempts, liveness,
// acks, cursors, topic intents) whose steps read and write the same private state; the pure parts
// (backoff, cursors, dedupe, socket, frame checks in @herald/protocol) are already modules.
import {
  BROADCAST,
  type ClientFrame,
  type Cursors,
  type GapFrame,
  INBOX,
  isValidTopic,
  MAX_CURSORS,
  type NotificationFrame,
  parseServerFrame,
  parseStream,
  type ReconnectFrame,
  type SubscribedFrame,
  topicStream,
  type UnsubscribedFrame,
  type WelcomeFrame,
} from '@herald/protocol';
import { Backoff, type BackoffOptions } from './backoff.js';
import { CLOSE_ABNORMAL, CloseCode } from './close-codes.js';
import { type CursorStorage, CursorTracker, MemoryCursorStorage, type StorageLike } from './cursors.js';
import { RecentIds } from './dedupe.js';
import { Emitter } from './emitter.js';
import { HeraldError } from './errors.js';
import { httpLink } from './http.js';
import {
  dropSocket,
  messageText,
  OPEN,
  onProtocolPing,
  resolveWebSocket,
  type WebSocketConstructor,
  type WebSocketLike,
} from './socket.js';

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** How the client reaches a push node (README: Transports). */
export type Transport = 'websocket' | 'sse' | 'poll';
const TRANSPORTS: readonly Transport[] = ['websocket', 'sse', 'poll'];

/** Where `auto` remembers the transport that worked when there is no `localStorage` (per process). */
const processMemory = new Map<string, string>();
const memoryStorage: StorageLike = {
  getItem: (k) => processMemory.get(k) ?? null,
  setItem: (k, v) => {
    if (processMemory.size >= 64 && !processMemory.has(k)) processMemory.clear();
    processMemory.set(k, v);
  },
};

/** A device token (JWT), or a function that fetches one (called again after the server rejects one). */
export type TokenSource = string | (() => string | Promise<string>);

export interface HeraldClientOptions {
  /**
   * WebSocket URL of the push service, e.g. `wss://push.example.com/v1/ws`. A URL without a path
   * gets `/v1/ws`. SSE and long-poll use the same host and prefix (`https://push.example.com/v1/sse`).
   */
  url: string;
  /**
   * `websocket`, `sse` (Server-Sent Events), `poll` (long-poll), or `auto` (the default): WebSocket
   * first; when it fails before the node's welcome (a proxy refusing the upgrade, no WebSocket in
   * this runtime), SSE, then long-poll, then WebSocket again. A fallback that got a welcome is
   * remembered for `transportMemoryMs` in `transportMemory`, and tried first meanwhile. The
   * README's "How auto decides" has the exact rules.
   */
  transport?: Transport | 'auto';
  /** Where `auto` remembers its transport. Default: `localStorage` when present, else process memory. */
  transportMemory?: StorageLike;
  /** How long `auto` remembers the transport that worked. Default 600000 (10 minutes). */
  transportMemoryMs?: number;
  token: TokenSource;
  /** Where cursors survive restarts. Default: memory only. */
  storage?: CursorStorage;
  /** Long-poll: how long the node may hold a poll, in s. Default: 3 s under `pingIdleMs + pongTimeoutMs` (17), at most 25. */
  pollWaitS?: number;
  /** WebSocket implementation. Default: the global one, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays: full jitter over min(maxMs, initialMs * 2^attempt). Default 250 / 30000. */
  backoff?: BackoffOptions;
  /** Ack every processed notification. Default true; with false, call `ack()`. */
  autoAck?: boolean;
  /** Acks are batched: at most one per stream per this many ms, carrying the highest seq. Default 20. */
  ackDelayMs?: number;
  /**
   * While notifications keep coming, acks go at most this often (ms); the first after a quiet
   * interval still goes after `ackDelayMs`. An ack costs a push node about twice what the
   * delivery does (BENCHMARKS.md, issue #14). Default 1000; 0: every `ackDelayMs`.
   */
  ackIntervalMs?: number;
  /** How many recent notification ids are remembered to drop duplicates. Default 10000. */
  dedupeSize?: number;
  /** Topics to subscribe to on every connection. */
  topics?: string[];
  /** Bound on the token function's answer. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * A socket that gets no `welcome` this long after it was created is dropped and retried (a
   * stopped node's kernel still completes TCP handshakes, so a connect alone proves nothing).
   * Default 10000.
   */
  welcomeTimeoutMs?: number;
  /** After the welcome: when nothing at all arrived for this long the client sends a `ping`. Default 15000. */
  pingIdleMs?: number;
  /**
   * After such a `ping`: when still nothing arrives within this long the node is considered
   * silent; the socket is dropped and the client reconnects with backoff. Default 5000, so a
   * silent node is detected within `pingIdleMs + pongTimeoutMs` (20 s).
   */
  pongTimeoutMs?: number;
  /**
   * Browser lifecycle: when the network comes back (`online`) or the tab becomes visible again
   * (`visibilitychange`), a waiting reconnect happens at once and an open socket is checked
   * (a laptop that slept may hold a dead one). Default: `window` and `document` when present;
   * `false` turns it off.
   */
  lifecycle?: LifecycleTargets | false;
}

/** Where lifecycle events come from (a browser's `window` and `document`, or test stand-ins). */
export interface LifecycleTargets {
  window?: EventTarget;
  document?: EventTarget & { visibilityState?: string };
}

/** How long a socket checked after a lifecycle event has to show it is alive. */
const LIFECYCLE_PROBE_MS = 3000;

export interface DisconnectEvent {
  code: number;
  reason: string;
}

export interface RetryEvent {
  /** Failed attempts in a row (0 for a reconnect the server asked for). */
  attempt: number;
  delayMs: number;
  /** `backoff` after a failure, `server` after a `reconnect` frame. */
  reason: 'backoff' | 'server';
}

export interface HeraldEvents {
  notification: NotificationFrame;
  state: ClientState;
  welcome: WelcomeFrame;
  gap: GapFrame;
  subscribed: SubscribedFrame;
  unsubscribed: UnsubscribedFrame;
  error: HeraldError;
  disconnect: DisconnectEvent;
  retry: RetryEvent;
}

/** Close codes after which a static token is not retried. */
export { CLOSE_ABNORMAL, CloseCode };

/** Close codes after which the same token is not retried (the catalog's final codes, and expiry). */
export const AUTH_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.BadFrame,
  CloseCode.Unauthorized,
  CloseCode.TokenExpired,
]);
/** How long `close()` waits for the closing handshake before it cuts the socket. */
const CLOSE_WAIT_MS = 2000;

interface Conn {
  ws: WebSocketLike;
  kind: Transport;
  token: string;
  welcomed: boolean;
  /** The socket opened (WebSocket handshake done, or the node accepted the HTTP request). */
  opened: boolean;
  /** No welcome in time and not even opened: nothing answered at all. */
  silent: boolean;
  lastRx: number;
  /** A liveness `ping` is out and nothing has arrived since. */
  probed: boolean;
  /** Welcome timeout before the welcome, liveness watchdog after it. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Highest ack sent per stream on this socket. */
  acked: Map<string, number>;
  closed: Promise<void>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: HeraldError) => void;
}

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A timing option: a positive finite number of ms, else a TypeError naming it. */
function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new TypeError(`${name} must be a positive number of milliseconds, got ${String(v)}`);
  return v;
}

function normalizeUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/ws';
  return u.toString();
}

/** The `alg` of a JWT's header, if it has a readable one. */
function tokenAlg(token: string): string | undefined {
  try {
    const h = token.slice(0, token.indexOf('.')).replace(/-/g, '+').replace(/_/g, '/');
    const alg = (JSON.parse(atob(h)) as { alg?: unknown }).alg;
    return typeof alg === 'string' ? alg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The error for a final close code. A 4001 for a bad HS256 signature says what is wrong: the
 * token was minted with another secret than the node's (the node's reason is jose's
 * "signature verification failed").
 */
function closeError(code: number, reason: string, token: string, fatal = true): HeraldError {
  const why = `(close ${code}${reason ? `: ${reason}` : ''})`;
  if (code === CloseCode.Unauthorized) {
    const hint =
      /signature/i.test(reason) && tokenAlg(token) === 'HS256'
        ? ": the token secret used to mint it does not match the server's HERALD_TOKEN_SECRET"
        : '';
    return new HeraldError('unauthorized', `the server rejected the device token ${why}${hint}`, {
      fatal,
      closeCode: code,
    });
  }
  if (code === CloseCode.TokenExpired)
    return new HeraldError('token_expired', `the device token expired ${why}`, { fatal, closeCode: code });
  return new HeraldError('bad_frame', `the server rejected a frame ${why}`, { fatal, closeCode: code });
}

/**
 * The Herald client: one WebSocket to a push node, kept open (reconnect with backoff, liveness
 * pings, drain handling), resumed from per-stream cursors, with acks batched and duplicates
 * dropped, so the application sees each notification once and in order per stream.
 */
export class HeraldClient extends Emitter<HeraldEvents> {
  private readonly url: string;
  private readonly mode: Transport | 'auto';
  private readonly memory: StorageLike;
  private readonly memoryMs: number;
  private readonly memoryKey: string;
  private readonly pollWaitS: number;
  /** The transport of the next attempt. */
  private kind: Transport = 'websocket';
  private readonly tokenSource: TokenSource;
  private readonly ctor: WebSocketConstructor | undefined;
  private readonly autoAck: boolean;
  private readonly ackDelayMs: number;
  private readonly ackIntervalMs: number;
  /** When acks last went out (Date.now()). */
  private lastAck = 0;
  private readonly connectTimeoutMs: number;
  private readonly welcomeTimeoutMs: number;
  private readonly pingIdleMs: number;
  private readonly pongTimeoutMs: number;
  private readonly random: () => number;
  private readonly backoff: Backoff;
  private readonly recent: RecentIds;
  private readonly tracker: CursorTracker;
  /** Topics the application wants; subscribed again on every connection. */
  private readonly desired = new Set<string>();
  /** Unsubscribes not yet confirmed by the server; replayed on connect. */
  private readonly pendingUnsubs = new Set<string>();
  /** Highest seq the application acked per stream (manual acks). */
  private readonly manualAcked = new Map<string, number>();
  private readonly pendingAcks = new Map<string, number>();
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private conn: Conn | undefined;
  private current: ClientState = 'closed';
  private running = false;
  /** Bumped when the client starts or stops, so async steps of an older run give up. */
  private run = 0;
  private everOpen = false;
  private loading: Promise<void> | undefined;
  private token: string | undefined;
  private rejected: { token: string; code: number; reason: string } | undefined;
  private serverDelayMs: number | undefined;
  private waiters: Waiter[] = [];
  private readonly lifecycle: LifecycleTargets | undefined;
  private readonly onLifecycle = (): void => this.wake();

  constructor(opts: HeraldClientOptions) {
    super();
    this.url = normalizeUrl(opts.url);
    const mode = opts.transport ?? 'auto';
    if (mode !== 'auto' && !TRANSPORTS.includes(mode))
      throw new TypeError(`transport must be auto, websocket, sse or poll, got ${String(mode)}`);
    this.mode = mode;
    this.memory =
      opts.transportMemory ?? (globalThis as { localStorage?: StorageLike }).localStorage ?? memoryStorage;
    this.memoryMs = positive('transportMemoryMs', opts.transportMemoryMs, 600_000);
    this.memoryKey = `herald:transport:${this.url}`;
    if (typeof opts.token !== 'string' && typeof opts.token !== 'function')
      throw new TypeError('token must be a string or a function');
    this.tokenSource = opts.token;
    this.ctor = opts.WebSocket;
    this.autoAck = opts.autoAck ?? true;
    this.ackDelayMs = Math.max(0, opts.ackDelayMs ?? 20);
    this.ackIntervalMs = Math.max(0, opts.ackIntervalMs ?? 1000);
    this.connectTimeoutMs = positive('connectTimeoutMs', opts.connectTimeoutMs, 10_000);
    this.welcomeTimeoutMs = positive('welcomeTimeoutMs', opts.welcomeTimeoutMs, 10_000);
    this.pingIdleMs = positive('pingIdleMs', opts.pingIdleMs, 15_000);
    this.pongTimeoutMs = positive('pongTimeoutMs', opts.pongTimeoutMs, 5_000);
    this.pollWaitS = Math.floor(
      positive(
        'pollWaitS',
        opts.pollWaitS,
        Math.min(25, Math.max(1, (this.pingIdleMs + this.pongTimeoutMs) / 1000 - 3)),
      ),
    );
    this.backoff = new Backoff(opts.backoff);
    this.random = opts.backoff?.random ?? Math.random;
    this.recent = new RecentIds(opts.dedupeSize ?? 10_000);
    this.tracker = new CursorTracker(opts.storage ?? new MemoryCursorStorage(), (err) =>
      this.emit(
        'error',
        new HeraldError('storage_failed', `cursor storage failed: ${String(err)}`, { cause: err }),
      ),
    );
    const g = globalThis as { window?: EventTarget; document?: LifecycleTargets['document'] };
    this.lifecycle =
      opts.lifecycle === false
        ? undefined
        : (opts.lifecycle ??
          (g.window && g.document ? { window: g.window, document: g.document } : undefined));
    for (const t of opts.topics ?? []) {
      if (!isValidTopic(t)) throw new TypeError(`invalid topic ${JSON.stringify(t)}`);
      this.desired.add(t);
    }
  }

  get state(): ClientState {
    return this.current;
  }

  /** The transport of the current (or next) connection. */
  get transport(): Transport {
    return this.conn?.kind ?? this.kind;
  }

  /** `auto`'s remembered transport, if still fresh. */
  private remembered(): Transport | undefined {
    try {
      const m = JSON.parse(this.memory.getItem(this.memoryKey) ?? 'null') as { t: Transport; until: number };
      return TRANSPORTS.includes(m.t) && m.until > Date.now() && m.until - Date.now() <= this.memoryMs
        ? m.t
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** The last processed seq per stream. */
  cursors(): Cursors {
    return this.tracker.snapshot();
  }

  /**
   * Starts the client (if it is not running) and resolves on the next welcome. Rejects when the
   * client stops for good first (a final close code with a static token, or `close()`); such
   * failures are also emitted as `error`, so not awaiting this promise is safe.
   */
  connect(): Promise<void> {
    if (this.running && this.current === 'open') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    p.catch(() => undefined);
    if (!this.running) {
      this.running = true;
      this.run++;
      this.everOpen = false;
      this.kind = this.mode === 'auto' ? (this.remembered() ?? 'websocket') : this.mode;
      this.backoff.reset();
      this.listenLifecycle(true);
      this.setState('connecting');
      void this.attempt();
    }
    return p;
  }

  /** Stops for good (no reconnects): sends pending acks, closes the socket, flushes cursors. */
  async close(): Promise<void> {
    this.running = false;
    this.run++;
    this.listenLifecycle(false);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.settle(new HeraldError('closed', 'the client was closed', { fatal: true }));
    const conn = this.conn;
    if (conn) {
      if (this.ackTimer !== undefined) this.flushAcks();
      clearTimeout(conn.timer);
      try {
        conn.ws.close(1000, 'client closed');
      } catch {
        // not open yet or already closing
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        conn.closed.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), CLOSE_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) dropSocket(conn.ws, 1000, 'client closed');
      this.lost(conn, 1000, 'client closed');
    }
    // A connect() made while this one was closing has started a new run: leave its state alone.
    if (!this.running) this.setState('closed');
    await this.tracker.flush();
  }

  /** Subscribes to a topic now if connected, and on every later connection. */
  subscribe(topic: string): void {
    if (!isValidTopic(topic)) throw new TypeError(`invalid topic ${JSON.stringify(topic)}`);
    this.desired.add(topic);
    this.pendingUnsubs.delete(topic);
    const conn = this.openConn();
    if (conn) this.sendSubscribe(conn, topic);
  }

  /** Unsubscribes now if connected, else on the next connection. */
  unsubscribe(topic: string): void {
    if (!isValidTopic(topic)) throw new TypeError(`invalid topic ${JSON.stringify(topic)}`);
    this.desired.delete(topic);
    this.pendingUnsubs.add(topic);
    const conn = this.openConn();
    if (conn) this.send(conn, { type: 'unsubscribe', topic });
  }

  /**
   * Acks a stream up to `seq` (cumulative; capped at the stream's cursor). Needed only with
   * `autoAck: false`. Batched like automatic acks; dropped while disconnected.
   */
  ack(stream: string, seq: number): void {
    if (!isSeq(seq)) throw new RangeError('seq must be a non-negative integer');
    const upTo = Math.min(seq, this.tracker.get(stream) ?? 0);
    if (upTo <= 0) return;
    if (upTo > (this.manualAcked.get(stream) ?? 0)) this.manualAcked.set(stream, upTo);
    if (this.conn) this.queueAck(this.conn, stream, upTo);
  }

  /**
   * Hands the node a fresh token (`refresh` frame) before the current one expires, and uses it
   * for later connections. Without an argument the token function is called.
   */
  async refreshToken(token?: string): Promise<void> {
    let t = token;
    if (t === undefined) {
      if (typeof this.tokenSource === 'string')
        throw new TypeError('refreshToken() needs a token when the token option is a string');
      t = await this.tokenSource();
    }
    if (typeof t !== 'string' || t.length === 0) throw new TypeError('token must be a non-empty string');
    this.token = t;
    this.rejected = undefined;
    const conn = this.openConn();
    if (conn) {
      conn.token = t;
      this.send(conn, { type: 'refresh', token: t });
    }
  }

  // ---- connection lifecycle ----

  private async attempt(): Promise<void> {
    const run = this.run;
    this.retryTimer = undefined;
    this.loading ??= this.tracker.load();
    await this.loading;
    if (run !== this.run) return;

    let token: string;
    try {
      token = await this.withTimeout(this.currentToken(), 'the token function timed out');
    } catch (err) {
      if (run !== this.run) return;
      this.emit(
        'error',
        new HeraldError('token_failed', `the token function failed: ${String(err)}`, { cause: err }),
      );
      return this.retry();
    }
    if (run !== this.run) return;
    if (this.rejected && token === this.rejected.token) {
      // Asking again gave the same token: retrying cannot help.
      const { code, reason } = this.rejected;
      return this.fatal(closeError(code, reason, token));
    }

    const kind = this.kind;
    let ws: WebSocketLike;
    try {
      if (kind === 'websocket') {
        const Ctor = await resolveWebSocket(this.ctor);
        if (run !== this.run) return;
        ws = new Ctor(this.url);
      } else {
        const base = new URL('.', this.url);
        base.protocol = base.protocol === 'wss:' ? 'https:' : 'http:';
        ws = httpLink(kind, {
          base: base.toString(),
          token,
          cursors: () => this.helloCursors(),
          topics: () => [...this.desired],
          waitS: this.pollWaitS,
          onRefresh: () => {
            if (typeof this.tokenSource === 'function')
              this.refreshToken().catch((err: unknown) =>
                this.emit(
                  'error',
                  new HeraldError('token_failed', `the token function failed: ${String(err)}`),
                ),
              );
          },
        });
      }
    } catch (err) {
      if (run !== this.run) return;
      const e = new HeraldError(
        'socket_failed',
        `cannot open a WebSocket: ${err instanceof Error ? err.message : String(err)}`,
        { fatal: this.mode !== 'auto', cause: err },
      );
      if (e.fatal) return this.fatal(e);
      // `auto`: said (no WebSocket here, and how to get one), then on to SSE.
      this.emit('error', e);
      this.kind = 'sse';
      return this.retry();
    }

    let onClosed: () => void = () => undefined;
    const conn: Conn = {
      ws,
      kind,
      token,
      welcomed: false,
      opened: false,
      silent: false,
      lastRx: Date.now(),
      probed: false,
      timer: undefined,
      acked: new Map(),
      closed: new Promise<void>((r) => {
        onClosed = r;
      }),
    };
    this.conn = conn;
    conn.timer = setTimeout(() => {
      conn.silent = !conn.opened;
      this.drop(conn, CLOSE_ABNORMAL, `no welcome within ${this.welcomeTimeoutMs} ms`);
    }, this.welcomeTimeoutMs);
    ws.addEventListener('open', () => {
      if (this.conn !== conn) return;
      conn.opened = true;
      conn.lastRx = Date.now();
      this.send(conn, { type: 'hello', token, cursors: this.helloCursors() });
    });
    ws.addEventListener('message', (ev) => this.onMessage(conn, ev.data));
    ws.addEventListener('close', (ev) => {
      onClosed();
      this.lost(conn, ev.code, ev.reason);
    });
    ws.addEventListener('error', () => undefined);
    onProtocolPing(ws, () => this.touch(conn));
  }

  /** Bounds the token fetch by `connectTimeoutMs`. */
  private async withTimeout<T>(p: Promise<T>, message: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(message)), this.connectTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async currentToken(): Promise<string> {
    if (this.token !== undefined) return this.token;
    const t = typeof this.tokenSource === 'string' ? this.tokenSource : await this.tokenSource();
    if (typeof t !== 'string' || t.length === 0) throw new TypeError('the token must be a non-empty string');
    this.token = t;
    return t;
  }

  /** Gives up on a socket now (timeouts, `reconnect`), without waiting for a closing handshake. */
  private drop(conn: Conn, code: number, reason: string): void {
    if (this.conn !== conn) return;
    dropSocket(conn.ws, 1000, reason);
    this.lost(conn, code, reason);
  }

  /** The socket is gone: report it, then reconnect unless stopped or told not to. */
  private lost(conn: Conn, code: number, reason: string): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    clearTimeout(conn.timer);
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.pendingAcks.clear();
    this.emit('disconnect', { code, reason });
    if (!this.running) return;
    // `auto`: a transport that failed before any welcome gives way to the next, unless the node
    // refused (close codes 4000 and up: the same on every transport) or, once this run had a
    // session, nothing answered at all (a stalled node behind a hashing balancer: retrying the
    // same transport is what moves on when it recovers; not a proxy refusing the transport).
    if (this.mode === 'auto' && !conn.welcomed && code < 4000 && !(this.everOpen && conn.silent))
      this.kind = TRANSPORTS[(TRANSPORTS.indexOf(conn.kind) + 1) % TRANSPORTS.length]!;
    // A session on a fallback transport tries WebSocket again once the memory of the fallback is stale.
    if (this.mode === 'auto' && conn.welcomed && !this.remembered()) this.kind = 'websocket';
    if (AUTH_CLOSE_CODES.has(code)) {
      if (typeof this.tokenSource === 'string') {
        this.fatal(closeError(code, reason, conn.token));
        return;
      }
      // Fetch a fresh token before retrying; a token that failed auth must not come back.
      if (code !== CloseCode.BadFrame) this.rejected = { token: conn.token, code, reason };
      this.token = undefined;
      // A rejected token is worth knowing about even though the client retries (an expiry is routine).
      if (code === CloseCode.Unauthorized) this.emit('error', closeError(code, reason, conn.token, false));
    }
    this.retry();
  }

  private retry(): void {
    if (!this.running) return;
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    let delayMs: number;
    let reason: RetryEvent['reason'];
    if (this.serverDelayMs !== undefined) {
      delayMs = this.serverDelayMs;
      this.serverDelayMs = undefined;
      reason = 'server';
    } else {
      delayMs = this.backoff.next();
      reason = 'backoff';
    }
    const run = this.run;
    this.emit('retry', { attempt: reason === 'server' ? 0 : this.backoff.attempt, delayMs, reason });
    if (run !== this.run || !this.running) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.attempt(), delayMs);
  }

  private listenLifecycle(on: boolean): void {
    const l = this.lifecycle;
    if (!l) return;
    const method = on ? 'addEventListener' : 'removeEventListener';
    l.window?.[method]('online', this.onLifecycle);
    l.document?.[method]('visibilitychange', this.onLifecycle);
  }

  /**
   * Network back or tab visible: a reconnect waiting out its backoff goes now (the reason it
   * failed is likely gone), and an open socket that has been quiet is probed with a ping and
   * dropped if nothing answers soon. Not an SSE stream or a poll: a `ping` has no way to them,
   * so the probe would drop every quiet one on every tab switch; the watchdog, overdue after a
   * sleep, checks them within `pongTimeoutMs`.
   */
  private wake(): void {
    if (!this.running || this.lifecycle?.document?.visibilityState === 'hidden') return;
    const conn = this.conn;
    if (!conn) {
      if (this.retryTimer === undefined) return;
      clearTimeout(this.retryTimer);
      this.backoff.reset();
      void this.attempt();
      return;
    }
    if (!conn.welcomed || conn.kind !== 'websocket' || Date.now() - conn.lastRx < LIFECYCLE_PROBE_MS) return;
    const heard = conn.lastRx;
    this.send(conn, { type: 'ping' });
    setTimeout(() => {
      if (this.conn === conn && conn.lastRx === heard)
        this.drop(conn, CLOSE_ABNORMAL, 'no answer after wake-up');
    }, LIFECYCLE_PROBE_MS);
  }

  private fatal(err: HeraldError): void {
    this.listenLifecycle(false);
    this.running = false;
    this.run++;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const conn = this.conn;
    if (conn) this.drop(conn, CLOSE_ABNORMAL, err.message);
    this.setState('closed');
    this.emit('error', err);
    this.settle(err);
  }

  private settle(err?: HeraldError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private setState(state: ClientState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  private openConn(): Conn | undefined {
    const conn = this.conn;
    return conn?.welcomed && conn.ws.readyState === OPEN ? conn : undefined;
  }

  private send(conn: Conn, frame: ClientFrame): void {
    if (conn.ws.readyState !== OPEN) return;
    try {
      conn.ws.send(JSON.stringify(frame));
    } catch {
      // closing: the close event follows
    }
  }

  /** Cursors for the hello: valid stream names only, at most the protocol's bound, own streams first. */
  private helloCursors(): Cursors {
    const all = this.tracker.snapshot();
    const rank = (name: string): number => {
      if (name === INBOX || name === BROADCAST) return 0;
      const s = parseStream(name);
      return s?.kind === 'topic' && this.desired.has(s.topic) ? 1 : 2;
    };
    const names = Object.keys(all)
      .filter((n) => parseStream(n) !== undefined && isSeq(all[n]))
      .sort((a, b) => rank(a) - rank(b))
      .slice(0, MAX_CURSORS);
    const out: Cursors = {};
    for (const n of names) out[n] = all[n]!;
    return out;
  }

  // ---- liveness ----

  private touch(conn: Conn): void {
    conn.lastRx = Date.now();
    conn.probed = false;
  }

  /**
   * Client-side liveness (docs/protocol.md): nothing heard for `pingIdleMs` → send a `ping`
   * (browsers cannot see the node's protocol pings, so the `pong` is what proves the link);
   * still nothing `pongTimeoutMs` later → the node is silent (a stopped process keeps its sockets
   * open), so drop the socket and reconnect. One timer per socket, re-armed on expiry rather
   * than per frame: any frame (or protocol ping) only moves `lastRx`.
   */
  private watchdog(conn: Conn): void {
    if (this.conn !== conn) return;
    clearTimeout(conn.timer);
    if (conn.probed) {
      this.drop(conn, CLOSE_ABNORMAL, `no answer to ping within ${this.pongTimeoutMs} ms`);
      return;
    }
    const idle = Date.now() - conn.lastRx;
    let wait = this.pingIdleMs - idle;
    if (wait <= 0) {
      conn.probed = true;
      this.send(conn, { type: 'ping' });
      wait = this.pongTimeoutMs;
    }
    conn.timer = setTimeout(() => this.watchdog(conn), Math.max(1, wait));
  }

  // ---- inbound ----

  private onMessage(conn: Conn, data: unknown): void {
    if (this.conn !== conn) return;
    this.touch(conn);
    const text = messageText(data);
    const r = text === undefined ? undefined : parseServerFrame(text);
    if (!r?.ok) {
      // A frame type newer than this client is skipped; a broken frame is reported.
      if (!r?.unknownType) this.badFrame(r ? `a bad frame: ${r.reason}` : 'a binary frame');
      return;
    }
    const f = r.frame;
    switch (f.type) {
      case 'welcome':
        this.onWelcome(conn, f);
        break;
      case 'notification':
        this.onNotification(conn, f);
        break;
      case 'gap':
        this.onGap(conn, f);
        break;
      case 'subscribed':
        this.tracker.adopt(topicStream(f.topic), f.cursor);
        this.emit('subscribed', f);
        break;
      case 'unsubscribed':
        this.onUnsubscribed(f);
        break;
      case 'error':
        this.emit('error', new HeraldError(f.code, f.message));
        break;
      case 'reconnect':
        this.onReconnect(conn, f);
        break;
      case 'pong':
        break;
    }
  }

  private badFrame(what: string): void {
    this.emit('error', new HeraldError('bad_server_frame', `the server sent ${what}`));
  }

  private onWelcome(conn: Conn, welcome: WelcomeFrame): void {
    if (conn.welcomed) return;
    conn.welcomed = true;
    this.watchdog(conn);
    // `auto` remembers a fallback that worked; WebSocket, its first choice anyway, is not written
    // (a page whose WebSocket works keeps nothing of Herald's in its storage).
    if (this.mode === 'auto' && conn.kind !== 'websocket') {
      try {
        this.memory.setItem(
          this.memoryKey,
          JSON.stringify({ t: conn.kind, until: Date.now() + this.memoryMs }),
        );
      } catch {
        // a full or refused storage: auto just starts from WebSocket next time
      }
    }
    this.backoff.reset();
    this.rejected = undefined;
    this.everOpen = true;
    for (const [name, s] of Object.entries(welcome.streams)) this.tracker.adopt(name, s.cursor);
    this.setState('open');
    this.emit('welcome', welcome);
    if (this.conn !== conn) return;
    // Intents made while offline (and the `topics` option) are replayed from the desired sets.
    for (const topic of this.desired)
      if (!(topicStream(topic) in welcome.streams)) this.sendSubscribe(conn, topic);
    for (const topic of this.pendingUnsubs) {
      if (topicStream(topic) in welcome.streams) this.send(conn, { type: 'unsubscribe', topic });
      else this.pendingUnsubs.delete(topic);
    }
    this.settle();
  }

  private sendSubscribe(conn: Conn, topic: string): void {
    const cursor = this.tracker.get(topicStream(topic));
    this.send(
      conn,
      cursor === undefined ? { type: 'subscribe', topic } : { type: 'subscribe', topic, cursor },
    );
  }

  private onNotification(conn: Conn, n: NotificationFrame): void {
    // `seen` records the id either way; a duplicate by id or by seq is not shown again.
    const dupId = this.recent.seen(n.id);
    const isNew = this.tracker.isNew(n.stream, n.seq);
    if (dupId || !isNew) {
      this.tracker.advance(n.stream, n.seq);
      // Still acked, so the node stops resending it (cumulative ack of what was processed).
      if (this.autoAck || (this.manualAcked.get(n.stream) ?? 0) >= n.seq)
        this.queueAck(conn, n.stream, n.seq);
      return;
    }
    this.tracker.advance(n.stream, n.seq);
    if (this.autoAck) this.queueAck(conn, n.stream, n.seq);
    this.emit('notification', n);
  }

  private onGap(conn: Conn, g: GapFrame): void {
    const cursor = g.next - 1;
    if (cursor < (this.tracker.get(g.stream) ?? 0)) {
      // A reset: the stream starts again, so acks and manual acks above the new cursor are void.
      this.pendingAcks.delete(g.stream);
      conn.acked.delete(g.stream);
      this.manualAcked.delete(g.stream);
    }
    this.tracker.set(g.stream, cursor);
    if (this.autoAck && cursor > 0) this.queueAck(conn, g.stream, cursor);
    this.emit('gap', g);
  }

  private onUnsubscribed(f: UnsubscribedFrame): void {
    this.pendingUnsubs.delete(f.topic);
    if (!this.desired.has(f.topic)) {
      const stream = topicStream(f.topic);
      this.tracker.delete(stream);
      this.pendingAcks.delete(stream);
      this.manualAcked.delete(stream);
    }
    this.emit('unsubscribed', f);
  }

  /** The node is draining: go after its delay plus a little jitter, without counting a failure. */
  private onReconnect(conn: Conn, f: ReconnectFrame): void {
    const delay = f.delayMs;
    const jitter = Math.floor(this.random() * Math.min(1000, Math.max(100, delay / 10)));
    this.serverDelayMs = delay + jitter;
    if (this.ackTimer !== undefined) this.flushAcks();
    this.drop(conn, CloseCode.Draining, f.reason || 'node draining');
  }

  // ---- acks ----

  private queueAck(conn: Conn, stream: string, seq: number): void {
    if (this.conn !== conn || !conn.welcomed) return;
    if (seq <= (conn.acked.get(stream) ?? 0)) return;
    if (seq > (this.pendingAcks.get(stream) ?? 0)) this.pendingAcks.set(stream, seq);
    this.ackTimer ??= setTimeout(
      () => this.flushAcks(),
      Math.max(this.ackDelayMs, this.lastAck + this.ackIntervalMs - Date.now()),
    );
  }

  private flushAcks(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.lastAck = Date.now();
    const conn = this.conn;
    if (conn?.welcomed) {
      for (const [stream, seq] of this.pendingAcks) {
        if (seq <= (conn.acked.get(stream) ?? 0)) continue;
        conn.acked.set(stream, seq);
        this.send(conn, { type: 'ack', stream, seq });
      }
    }
    this.pendingAcks.clear();
  }
}
