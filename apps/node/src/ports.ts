import type { NewEntry, PresenceTransport, StreamKeys, StreamRead } from '@herald/store';
import type { Logger } from 'pino';
import type { DeviceIdentity } from './auth.js';
import type { Hello, Leaving } from './hellos.js';
import type { Stats } from './stats.js';
import type { SharedFrame } from './transport.js';

/**
 * What a session needs from the rest of the node, each as the narrow interface it uses. The node
 * builds one `SessionDeps` per app (app-scope.ts) and every session holds a pointer to its app's
 * (the default app's until its token names another). Nothing here imports the session, the hub
 * or the broker: they depend on these interfaces, not on each other.
 */

export interface NodeLimits {
  heartbeatMs: number;
  helloTimeoutMs: number;
  maxTopics: number;
  slowConsumerBytes: number;
  replayBatch: number;
  maxConnections: number;
  maxConnectionsPerUser: number;
  /** Client frames per second per connection (burst twice that). */
  frameRate: number;
}

/** What a doorbell reaches on this node: the sessions of a device or of a shared stream. */
export interface Listener {
  /** A live entry; `frame` is its notification frame, shared by the listeners of the doorbell. */
  offer(stream: string, seq: number, entry: NewEntry, frame: string | SharedFrame): void;
  /** The backend changed the device's subscriptions (topics admin API). */
  control(op: 'sub' | 'unsub', topic: string): void;
  /** Doorbells may have been missed (a Redis reconnect): re-read every stream. */
  resync(): void;
}

/** Where sessions register so doorbells find them (the `Hub`). */
export interface Registry {
  readonly connections: { add(l: Listener): unknown; delete(l: Listener): unknown };
  /** Counts a user's connection unless the user is at `max`; false then. */
  addUser(user: string, max: number): boolean;
  removeUser(user: string): void;
  addDevice(device: string, l: Listener): void;
  /** True when this was the device's last connection on this node. */
  removeDevice(device: string, l: Listener): boolean;
  join(stream: string, l: Listener): void;
  leave(stream: string, l: Listener): void;
}

/** How the broker finds listeners (the `Hub`, read side). */
export interface Audience {
  readonly size: number;
  readonly connections: Iterable<Listener>;
  deviceClients(device: string): Listener | ReadonlySet<Listener> | undefined;
  streamClients(stream: string): ReadonlySet<Listener> | undefined;
}

/** Topic doorbell subscriptions (the `Broker`). */
export interface TopicBells {
  /** Resolves once the doorbell is subscribed, so a stream read after it misses nothing. */
  ref(topic: string): Promise<unknown>;
  unref(topic: string): void;
}

/** Where a receipt happened: the device, the stream and (where known) the entry's seq there. */
export interface ReceiptAt {
  device: string;
  stream: string;
  seq?: number;
}

/**
 * Delivered and acked counts and acked cursors, written in batches (the `Flusher`); with `at`,
 * also a `notification.delivered` / `notification.acked` webhook event when the app wants them.
 */
export interface Receipts {
  delivered(id: string, at?: ReceiptAt): void;
  acked(id: string, at?: ReceiptAt): void;
  cursor(device: string, stream: string, seq: number): void;
}

/** Stream reads. */
export interface StreamReader {
  keysOf(stream: string, device: string): StreamKeys;
  read(keys: StreamKeys, after: number, count: number): Promise<StreamRead>;
  head(keys: StreamKeys): Promise<number>;
  heads(keys: readonly StreamKeys[]): Promise<number[]>;
  /** Reads wait for HERALD_REDIS_MIN_REPLICAS: doorbell entries are read back, not delivered as they come. */
  readonly gated?: boolean;
}

/** A device's durable subscriptions and stored cursors. */
export interface DeviceStore {
  subscribe(device: string, topic: string): Promise<void>;
  unsubscribe(device: string, topic: string): Promise<void>;
  cursor(device: string, stream: string): Promise<number | undefined>;
  initCursor(device: string, stream: string, seq: number): Promise<void>;
}

/** The batched Redis work of hellos and of closes (the `Hellos`). */
export interface Presences {
  open(device: string, user: string, address: string, transport?: PresenceTransport): Promise<Hello>;
  /** The topics a welcomed session joined: the device counts as online in them (presence API). */
  join(device: string, topics: readonly string[]): void;
  close(device: string, leaving?: Leaving): Promise<void>;
}

/** Something closed when its token expires. */
export interface Expiring {
  expire(): void;
}

/** Token expiries of all sessions (the `Expiries`). */
export interface ExpiryClock {
  /** Tracks `c` until `expMs`; returns the key to `remove` it with. */
  add(c: Expiring, expMs: number): number;
  remove(c: Expiring, key: number): void;
}

export interface Verifier {
  /** Rejects with a `TokenError` for a refused token. */
  verify(token: string): Promise<DeviceIdentity>;
  /**
   * `verify` without a promise when it can answer synchronously (HS256), else undefined; throws
   * the `TokenError` that `verify` would reject with.
   */
  verifyNow?(token: string): DeviceIdentity | undefined;
}

/** The apps of the node, as a session sees them (apps.ts). */
export interface AppDirectory {
  /** The session deps of an app this node serves, else undefined. */
  scope(app: string): SessionDeps | undefined;
  /** Whether one more session of the app stays within its connection cap across nodes, else why not. */
  admit(app: string): Refusal | undefined;
  /** Whether a browser `Origin` (undefined: not a browser) may connect as the app. */
  originAllowed(app: string, origin: string | undefined): boolean;
}

export interface SessionDeps {
  /** The app these deps serve: its streams, devices, hub and broker (docs/tenancy.md). */
  readonly app: string;
  readonly apps: AppDirectory;
  readonly nodeId: string;
  readonly limits: NodeLimits;
  readonly log: Logger;
  readonly stats: Stats;
  readonly verifier: Verifier;
  readonly streams: StreamReader;
  readonly devices: DeviceStore;
  readonly presences: Presences;
  readonly registry: Registry;
  readonly topics: TopicBells;
  readonly receipts: Receipts;
  readonly expiries: ExpiryClock;
}

/**
 * Why a node refuses a new session: the close code (4012 draining, 4013 node capacity, 4014 the
 * app's connection cap) and reason.
 */
export interface Refusal {
  code: number;
  reason: string;
}
