import type { HistogramData } from '../histogram.js';

/**
 * Which wire protocol a client speaks: WebSocket (Herald, Socket.IO, Nchan) or Server-Sent Events
 * (`herald-sse`: GET /v1/sse + POST /v1/acks; `nchan-sse`: Nchan's EventSource subscriber).
 */
export type ClientKind = 'herald' | 'socketio' | 'nchan' | 'herald-sse' | 'nchan-sse';

/**
 * What each client listens to:
 * - `own`: its own address only (Herald inbox; Socket.IO room = device id; Nchan channel = device id)
 * - `topic`: one shared topic (Herald `subscribe`; Socket.IO room; Nchan channel)
 * - `broadcast`: everything sent to all (Herald broadcast stream; Socket.IO `io.emit`; Nchan channel `all`)
 */
export type Subscription = { mode: 'own' } | { mode: 'topic'; topic: string } | { mode: 'broadcast' };

export interface ConnectSpec {
  kind: ClientKind;
  /**
   * Base URLs: `ws://host:port/v1/ws` (Herald), `ws://host:port` (Socket.IO, Nchan),
   * `http://host:port/v1/sse` (Herald SSE), `http://host:port` (Nchan SSE).
   */
  urls: string[];
  /** Device ids are `${idPrefix}${globalIndex}`. */
  idPrefix: string;
  /** Global index of this generator's first client; it owns `first .. first+count-1`. */
  first: number;
  count: number;
  sub: Subscription;
  /** Loopback source addresses; client i uses `sources[i % sources.length]`. */
  sources: string[];
  /** Handshakes in flight at once in this process. */
  concurrency: number;
  /** Bound on one client's connect + handshake. */
  clientTimeoutMs: number;
  /** Bound on the whole connect phase in this process. */
  phaseTimeoutMs: number;
  /** Herald: HS256 secret for device tokens. */
  tokenSecret?: string;
  /**
   * Herald: send cumulative acks this often (ms; 0: none): an `ack` frame (WebSocket) or a
   * `POST /v1/acks` (SSE) per client that received something since the last tick.
   */
  ackEveryMs?: number;
  /**
   * Herald: a client that acked less than this long ago (ms) keeps its ack for a later tick, as
   * the SDK's `ackIntervalMs` does while notifications keep coming (0: every tick).
   */
  ackIntervalMs?: number;
  /**
   * Herald WebSocket: a ready client whose socket the server or network closes reconnects with
   * the SDK's backoff (full jitter; see reconnect.ts). Off unless set (the storm benchmark).
   */
  reconnect?: { initialMs: number; maxMs: number };
}

export type Command =
  | { op: 'prepare'; id: number; spec: ConnectSpec }
  | { op: 'connect'; id: number }
  | { op: 'expect'; id: number; perClient: number }
  | { op: 'stats'; id: number }
  | { op: 'reconnects'; id: number; times: boolean }
  | { op: 'close'; id: number }
  | { op: 'exit'; id: number };

export interface ConnectResult {
  ok: number;
  failed: number;
  /** Failure reasons and their counts (error codes, close codes, timeouts). */
  errors: Record<string, number>;
  /** From the connect command to the last client ready, ms. */
  ms: number;
  /** Herald: connections per node (from `welcome.node`). */
  perNode: Record<string, number>;
}

export interface DeliveryStats {
  /** Deliveries counted since `expect` (duplicates included). */
  received: number;
  /** Distinct (client, index) deliveries within the expected range. */
  unique: number;
  duplicates: number;
  /** Deliveries with an index outside the expected range. */
  unexpected: number;
  /** Clients closed by the server or the network since `expect`. */
  dropped: number;
  dropReasons: Record<string, number>;
  /** Clients that are open and ready. */
  open: number;
  /** Wall-clock ms of the first and last delivery (0: none). */
  firstAt: number;
  lastAt: number;
  hist: HistogramData;
  /** This generator's own CPU seconds since `expect`. */
  cpuS: number;
  /** Herald acks sent since `expect`: WebSocket `ack` frames, or `POST /v1/acks` requests. */
  acks: number;
  /** HTTP acks answered 204 since `expect`. */
  acksAnswered: number;
  /** HTTP acks that failed, by reason. */
  ackErrors: Record<string, number>;
}

export type Reply =
  | { op: 'ok'; id: number }
  | { op: 'connected'; id: number; result: ConnectResult }
  | { op: 'stats'; id: number; stats: DeliveryStats }
  | { op: 'reconnects'; id: number; stats: ReconnectStats }
  | { op: 'error'; id: number; message: string };

/** What the reconnect mode saw since `prepare` (ConnectSpec.reconnect). */
export interface ReconnectStats {
  /** Ready clients closed by the server or the network. */
  drops: number;
  /** Reconnects that got `welcome`. */
  welcomes: number;
  /** Attempts closed with 4013 (node capacity or accept rate). */
  refused4013: number;
  /** Other failed attempts (refused, reset, timeout, other close codes), by reason. */
  failures: number;
  failureReasons: Record<string, number>;
  /** Dropped clients not back yet. */
  waiting: number;
  /** Wall-clock ms of the first drop and the last welcome (0: none). */
  firstDropAt: number;
  lastWelcomeAt: number;
  /** Per node (from `welcome.node`): wall-clock ms of each reconnect's welcome (when asked for). */
  welcomeTimes?: Record<string, number[]>;
  /** Wall-clock ms of each drop (when asked for). */
  dropTimes?: number[];
}
