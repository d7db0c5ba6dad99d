import {
  Devices,
  type Keys,
  Presence,
  type RedisClient,
  type ReplicaGate,
  StatusStore,
  Streams,
  WebhookOutbox,
} from '@herald/store';
import type { Logger } from 'pino';
import { type TokenVerifier, type TokenVerifierOptions, verifierFor } from './auth.js';
import type { Bells } from './bells.js';
import { Broker } from './broker.js';
import { Flusher } from './flusher.js';
import { Hellos } from './hellos.js';
import { Hub } from './hub.js';
import type { AppDirectory, ExpiryClock, NodeLimits, SessionDeps, Verifier } from './ports.js';
import type { Session } from './session.js';
import type { Stats } from './stats.js';

/** What the node needs of an app's config (`AppConfig` of @herald/config has it). */
export interface NodeApp {
  id: string;
  tokens: TokenVerifierOptions;
  /** Allowed browser origins; undefined allows any. */
  allowedOrigins?: string[];
  limits?: { maxConnections?: number; maxConnectionsPerUser?: number };
  /** Webhook endpoints of the app's keys as configured (apps.ts derives `webhookEvents` from them). */
  webhooks?: readonly { events: readonly string[] }[];
  /** The event types some endpoint of the app wants: the node records only these (docs/webhooks.md). */
  webhookEvents?: ReadonlySet<string>;
}

/** What every app of a node shares. */
export interface NodeParts {
  nodeId: string;
  redis: RedisClient;
  root: Keys;
  bells: Bells;
  /** Every open socket of the node (all apps). */
  connections: Set<Session>;
  log: Logger;
  stats: Stats;
  verifier: Verifier;
  expiries: ExpiryClock;
  apps: AppDirectory;
  limits: NodeLimits;
  presenceTtlMs: number;
  flushMs: number;
  deviceRetentionMs: number;
  /** HERALD_REDIS_MIN_REPLICAS: reads wait for the replicas (one gate for the node). */
  replicas?: ReplicaGate;
}

/**
 * One app on one node: its Keys, and the hub, broker, hellos, flusher and stores built on them,
 * gathered as the `SessionDeps` its sessions use. Nothing of one app's scope reaches another's
 * keys, channels or hub maps: two apps with the same device, user or topic never meet.
 */
export class AppScope {
  readonly keys: Keys;
  readonly hub: Hub<Session>;
  readonly presence: Presence;
  readonly devices: Devices;
  readonly streams: Streams;
  readonly deps: SessionDeps;
  private readonly broker: Broker;
  private readonly flusher: Flusher;
  /** The app's limits: the node's, with the app's connections per user (updated in place on reload). */
  private readonly limits: NodeLimits;
  verifier: TokenVerifier | undefined;
  origins: ReadonlySet<string> | undefined;
  /** The app's connection cap across all nodes, if it has one. */
  cap: number | undefined;
  /** The app's connections on the other live nodes at the last count (apps.ts). */
  others = 0;
  /** The app's outbox while it wants `device.online` or `device.offline` (raw events go there). */
  private presenceOutbox: WebhookOutbox | undefined;
  /** Webhook event types the app's endpoints want (NodeApp.webhookEvents). */
  webhookEvents: ReadonlySet<string> | undefined;

  constructor(
    private readonly parts: NodeParts,
    app: NodeApp,
  ) {
    const { redis, nodeId } = parts;
    this.keys = parts.root.forApp(app.id);
    const keys = this.keys;
    this.hub = new Hub<Session>(parts.connections);
    this.limits = { ...parts.limits };
    this.devices = new Devices(redis, keys, parts.deviceRetentionMs);
    this.presence = new Presence(redis, keys, parts.presenceTtlMs, parts.deviceRetentionMs);
    // The node only reads streams; the limits matter to the worker's appends. With
    // HERALD_REDIS_MIN_REPLICAS, reads wait for the replicas (Streams.read).
    this.streams = new Streams(redis, keys, { inboxMaxLen: 0, topicMaxLen: 0, keepMs: 0 }, parts.replicas);
    this.broker = new Broker(parts.bells, keys, nodeId, this.hub, parts.log);
    this.flusher = new Flusher(new StatusStore(redis, keys, 0), this.devices, parts.flushMs, parts.log, {
      outbox: new WebhookOutbox(redis, keys),
      wants: () => this.webhookEvents,
    });
    this.deps = {
      app: app.id,
      apps: parts.apps,
      nodeId,
      limits: this.limits,
      log: parts.log,
      stats: parts.stats,
      verifier: parts.verifier,
      streams: this.streams,
      devices: this.devices,
      presences: new Hellos(
        this.devices,
        this.presence,
        this.streams,
        keys,
        nodeId,
        parts.presenceTtlMs,
        () => this.presenceOutbox,
      ),
      registry: this.hub,
      topics: this.broker,
      receipts: this.flusher,
      expiries: parts.expiries,
    };
    this.update(app);
  }

  get id(): string {
    return this.deps.app;
  }

  /** Token keys, origins and limits from the app's (re)loaded config. */
  update(app: NodeApp): void {
    const t = app.tokens;
    try {
      this.verifier = verifierFor(t);
    } catch (err) {
      // A JWKS file that cannot be read: the app's tokens are refused until a reload fixes it.
      this.verifier = undefined;
      this.parts.log.error({ app: app.id, err: (err as Error).message }, 'app token keys unusable');
    }
    this.origins = app.allowedOrigins ? new Set(app.allowedOrigins) : undefined;
    this.webhookEvents = app.webhookEvents?.size ? app.webhookEvents : undefined;
    this.cap = app.limits?.maxConnections;
    const wants = app.webhookEvents?.has('device.online') || app.webhookEvents?.has('device.offline');
    this.presenceOutbox = wants ? new WebhookOutbox(this.parts.redis, this.keys) : undefined;
    this.limits.maxConnectionsPerUser =
      app.limits?.maxConnectionsPerUser ?? this.parts.limits.maxConnectionsPerUser;
  }

  /** Subscribes the app's doorbells and starts its flusher. */
  async start(): Promise<void> {
    await this.broker.start();
    this.flusher.start();
  }

  /** Writes pending counts and cursors now. */
  async flush(): Promise<void> {
    await this.flusher.flush();
    await this.flusher.flush();
  }

  /** Unsubscribes the app's doorbells and writes what is pending (its sessions are closed first). */
  async stop(): Promise<void> {
    this.broker.stop();
    await this.flusher.stop().catch(() => undefined);
  }
}
