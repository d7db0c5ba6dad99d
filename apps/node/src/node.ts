import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import { tenantLabel } from '@herald/config';
import { CloseCode, HttpError, healthOk, notReady } from '@herald/protocol';
import { type Devices, Keys, Nodes, type PresentDevice, ReplicaGate, Subscriber } from '@herald/store';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { WebSocket } from 'ws';
import { HttpAcks } from './acks.js';
import type { NodeApp } from './app-scope.js';
import { NodeApps } from './apps.js';
import { DEFAULT_APP } from './auth.js';
import { Bells } from './bells.js';
import { Expiries } from './expiry.js';
import { httpTransports } from './http-transports.js';
import type { Hub } from './hub.js';
import { LOG_REDACTION } from './log.js';
import { nodeMetrics } from './metrics.js';
import type { NodeDeps, NodeOptions } from './options.js';
import type { Refusal, SessionDeps } from './ports.js';
import { clientAddress, installProxyProtocol } from './proxy-protocol.js';
import { TokenBucket } from './rate.js';
import { Session } from './session.js';
import { type SseConn, sseBeat } from './sse-transport.js';
import { Stats } from './stats.js';
import type { Transport } from './transport.js';
import { attachWs, wsTransport } from './ws-transport.js';
import { upgradeAhead } from './ws-upgrade.js';

export type { NodeDeps, NodeOptions } from './options.js';

/** The heartbeat runs in this many slices per HERALD_HEARTBEAT_MS (see beat). */
const BEAT_SLICES = 10;

/** SSE heartbeat comments: below the 30-60 s idle timeouts common in proxies (nginx's default is 60 s). */
const SSE_HEARTBEAT_MS = 15_000;

/** The WebSocket path. */
export const WS_PATH = '/v1/ws';
/** Listen backlog when the options do not set one: room for a reconnect storm (Node's default is 511). */
export const DEFAULT_LISTEN_BACKLOG = 4096;

/** Fastify without a log line per request (probes and scrapes would flood it). */
function fastify(log: Logger): FastifyInstance {
  return Fastify({
    // A long-poll or SSE URL may carry the device token: never logged (log.ts).
    loggerInstance: log.child({}, LOG_REDACTION) as FastifyBaseLogger,
    // Not the top-level `disableRequestLogging`: deprecated in Fastify 5.12 (FSTDEP023).
    logController: new LogController({ disableRequestLogging: true }),
  });
}

/**
 * A push node: wires the hub of local sessions, the doorbell broker, the flusher and the
 * heartbeat around one Fastify server that serves `/v1/ws`, `/healthz` and `/readyz`. A WebSocket
 * on `/v1/ws` becomes a `Session` (session.ts) on the WebSocket transport (ws-transport.ts).
 */
export class HeraldNode {
  readonly app: FastifyInstance;
  /** What every session shares (one object per node). */
  readonly sessionDeps: SessionDeps;
  /** The default app's hub (every app's hub shares the node's `connections`). */
  readonly hub: Hub<Session>;
  readonly devices: Devices;
  readonly apps: NodeApps;
  /** Every open socket of the node, of every app, including those before hello. */
  private readonly connections = new Set<Session>();
  private readonly nodeId: string;
  private readonly log: Logger;
  private readonly bells: Bells;
  private readonly expiries = new Expiries();
  private readonly stats = new Stats();
  private readonly nodes: Nodes;
  private heartbeat: NodeJS.Timeout | undefined;
  private sseHeartbeat: NodeJS.Timeout | undefined;
  /** Open SSE streams, for their heartbeat comments. */
  private readonly sse = new Set<SseConn>();
  private readonly acks: HttpAcks;
  private draining = false;
  private readonly accepts: TokenBucket;
  private health: FastifyInstance | undefined;
  private started = false;
  private beatSlice = 0;
  private readonly replicas: ReplicaGate;

  constructor(
    private readonly opts: NodeOptions,
    private readonly deps: NodeDeps,
  ) {
    const root = new Keys(opts.redisPrefix);
    const { redis, log } = deps;
    const { stats, connections } = this;
    this.nodeId = opts.nodeId;
    this.log = log;
    for (const r of [redis, deps.sub]) r.on('error', () => stats.redisErrors++);
    this.nodes = new Nodes(redis, root);
    // With HERALD_REDIS_MIN_REPLICAS, every app's stream reads wait for the replicas (Streams.read).
    this.replicas = new ReplicaGate(
      opts.replicas ?? { minReplicas: 0, timeoutMs: 250 },
      root.replicaBarrier(),
    );
    this.bells = new Bells(new Subscriber(deps.sub), connections, log);
    const apps = new NodeApps(log);
    this.apps = apps;
    apps.init(
      {
        nodeId: opts.nodeId,
        redis,
        root,
        bells: this.bells,
        connections,
        log,
        stats,
        verifier: apps,
        expiries: this.expiries,
        apps,
        limits: opts.limits,
        presenceTtlMs: opts.presenceTtlMs,
        flushMs: opts.flushMs,
        deviceRetentionMs: opts.deviceRetentionMs,
        replicas: this.replicas,
      },
      opts.apps ?? [{ id: DEFAULT_APP, tokens: opts.tokens ?? {}, allowedOrigins: opts.allowedOrigins }],
    );
    // Sessions start on the default app's deps (or the first app's) and move to their token's
    // app at hello.
    const first = apps.get(DEFAULT_APP) ?? [...apps.all()][0];
    if (!first) throw new Error('a node needs at least one app');
    this.sessionDeps = first.deps;
    this.hub = first.hub;
    this.devices = first.devices;
    this.accepts = new TokenBucket(opts.acceptRate, opts.acceptRate);
    this.acks = new HttpAcks(redis, apps, opts.deviceRetentionMs);
    this.app = fastify(log);
  }

  /** Applies a reloaded apps config: new apps work at once, removed apps' sessions are closed. */
  reloadApps(apps: readonly NodeApp[]): Promise<void> {
    return this.apps.set(apps);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  isReady(): boolean {
    return (
      this.started &&
      !this.draining &&
      this.deps.redis.status === 'ready' &&
      this.deps.sub.status === 'ready' &&
      this.connections.size < this.opts.limits.maxConnections
    );
  }

  async start(): Promise<number> {
    const { app } = this;
    await app.register(websocket, {
      options: { maxPayload: this.opts.maxFrameBytes, perMessageDeflate: false, clientTracking: false },
      // Closing sockets is the drain's job, with reconnect hints; not the plugin's.
      preClose: (done) => done(),
    });
    app.get(
      WS_PATH,
      {
        websocket: true,
        // Browsers always send Origin; native clients do not and are let through. Refused before
        // the upgrade, so a page on another site cannot even open the socket.
        preValidation: async (req, reply) => {
          // Checked against the app's own list at hello, once the token names the app.
          const origin = req.headers.origin;
          if (origin !== undefined && !this.apps.anyOriginAllowed(origin))
            return reply
              .code(403)
              .send({ code: HttpError.OriginForbidden.code, message: `origin ${origin} is not allowed` });
        },
      },
      (ws, req) => {
        const raw = req.raw.socket as Socket & { _httpMessage?: ServerResponse | null };
        // The plugin's per-socket error listener closes over the Fastify request and reply, and
        // the HTTP response it routed the upgrade with stays attached to the TCP socket: both
        // would live as long as the connection (about 5 KiB each). The transport has its own
        // shared listeners; protocol errors (1009, 1007...) are ws's to finish, never a reset.
        ws.removeAllListeners('error');
        raw._httpMessage?.detachSocket(raw);
        this.onSocket(ws, clientAddress(raw) ?? req.ip, req.headers.origin);
      },
    );
    // The usual upgrade (no Origin, or an allowed one) skips the router; the route above
    // answers the rest (a refused Origin's 403, HEAD, other paths) exactly as before.
    upgradeAhead(
      app.server,
      app.websocketServer,
      WS_PATH,
      (req) => req.headers.origin === undefined || this.apps.anyOriginAllowed(req.headers.origin),
      (ws, req) => {
        const raw = req.socket as Socket;
        this.onSocket(ws, clientAddress(raw) ?? raw.remoteAddress ?? '', req.headers.origin);
      },
    );
    httpTransports(app, {
      deps: this.sessionDeps,
      apps: this.apps,
      acks: this.acks,
      sse: this.sse,
      pollMaxWaitMs: this.opts.pollMaxWaitMs ?? 60_000,
      drainMs: this.opts.drainMs,
      cookieSecure: this.opts.cookieSecure,
      admission: () => this.admission(),
    });
    const t = tenantLabel(this.opts.metricsAppLabel ?? true);
    const metrics = nodeMetrics(this.opts.nodeId, this.stats, this.connections, this.apps, t);
    this.probes(app, metrics);
    if (this.opts.healthPort > 0) {
      // Probes and scrapers do not speak PROXY protocol: give them a plain port of their own.
      this.health = fastify(this.log);
      this.probes(this.health, metrics);
      await this.health.listen({ host: this.opts.host, port: this.opts.healthPort });
    }

    // Only trusted when the operator says the balancer sends it: a header on a direct
    // connection to a node that does not expect one is an HTTP parse error, never an address.
    installProxyProtocol(app.server, {
      mode: this.opts.proxyProtocol ? 'required' : 'off',
      timeoutMs: this.opts.limits.helloTimeoutMs,
      onError: (err) => this.log.debug({ err: err.message }, 'PROXY protocol header refused'),
    });
    this.bells.start();
    await this.apps.start(this.nodes, this.opts.limits.heartbeatMs);
    this.heartbeat = setInterval(() => void this.beat(), this.opts.limits.heartbeatMs / BEAT_SLICES);
    this.heartbeat.unref();
    this.sseHeartbeat = setInterval(() => sseBeat(this.sse), this.opts.sseHeartbeatMs ?? SSE_HEARTBEAT_MS);
    this.sseHeartbeat.unref();
    await app.listen({
      host: this.opts.host,
      port: this.opts.port,
      backlog: this.opts.listenBacklog ?? DEFAULT_LISTEN_BACKLOG,
    });
    this.started = true;
    await this.nodes.heartbeat(this.nodeId, 0).catch(() => undefined);
    const addr = app.server.address();
    return typeof addr === 'object' && addr ? addr.port : this.opts.port;
  }

  /**
   * Whether a new session (any transport) may start on this node, else why not: draining, the
   * node's connection cap, or the accept rate (which this call counts against when it admits).
   */
  private admission(): Refusal | undefined {
    if (this.draining) return { code: CloseCode.Draining, reason: 'node draining' };
    if (this.connections.size >= this.opts.limits.maxConnections)
      return { code: CloseCode.Capacity, reason: 'node at capacity' };
    if (!this.accepts.take()) return { code: CloseCode.Capacity, reason: 'accept rate exceeded' };
    return undefined;
  }

  private onSocket(ws: WebSocket, remote: string, origin: string | undefined): void {
    const refused = this.admission();
    if (refused) ws.close(refused.code, refused.reason);
    else {
      const session = new Session(this.sessionDeps, wsTransport as Transport<unknown>, ws, remote);
      session.origin = origin;
      attachWs(ws, session);
      session.start();
    }
  }

  /** `/metrics`, `/healthz` and `/readyz` on a server. */
  private probes(app: FastifyInstance, metrics: Registry): void {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
    app.get('/healthz', async () => healthOk('node'));
    app.get('/readyz', async (_req, reply) => {
      if (this.isReady()) return healthOk('node');
      const why = !this.started
        ? 'starting'
        : this.draining
          ? 'draining'
          : this.connections.size >= this.opts.limits.maxConnections
            ? 'at capacity'
            : 'redis unavailable';
      return reply.code(503).send(notReady('node', why));
    });
  }

  /**
   * One slice of the heartbeat: the connections whose number falls in this slice get their
   * liveness check and ping, and their devices' presence is refreshed. Each connection is still
   * visited once per HERALD_HEARTBEAT_MS, but the pings and presence writes of a whole node are
   * spread over the interval instead of landing in one burst, which would hold up every
   * delivery queued behind it (a latency spike once per interval).
   */
  private async beat(): Promise<void> {
    const { connections, nodeId, log } = this;
    const slice = this.beatSlice;
    this.beatSlice = (slice + 1) % BEAT_SLICES;
    /** Devices to refresh (with the topics they read, for the topics' online sets), per app. */
    const devices = new Map<string, PresentDevice[]>();
    for (const c of connections) {
      if (c.connNo % BEAT_SLICES !== slice) continue;
      if (!c.alive) {
        c.terminate();
        continue;
      }
      c.alive = false;
      c.ping();
      const id = c.identity;
      if (id) {
        const entry = { device: id.device, topics: c.topicNames() };
        const list = devices.get(id.app);
        if (list) list.push(entry);
        else devices.set(id.app, [entry]);
      }
    }
    try {
      for (const [app, list] of devices) await this.apps.get(app)?.presence.refresh(list, nodeId);
      await this.nodes.heartbeat(nodeId, connections.size);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'presence refresh failed');
    }
  }

  /**
   * Drain: fail readiness, stop accepting, ask clients to reconnect spread over the drain
   * window (so they do not all land on the other nodes at once), cut the rest at the deadline.
   */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const { connections: hub, log } = this;
    log.info({ connections: hub.size, drainMs: this.opts.drainMs }, 'draining');
    this.app.server.close();
    // Held polls answer at once, each with a reconnect delay spread over the drain window.
    const clients: Session[] = [];
    for (const c of hub)
      if (c.transportKind !== 'poll') clients.push(c);
      else {
        c.send({
          type: 'reconnect',
          delayMs: Math.floor(Math.random() * this.opts.drainMs),
          reason: 'node draining',
        });
        c.close(CloseCode.Draining, 'node draining');
      }
    const step = clients.length > 0 ? this.opts.drainMs / clients.length : 0;
    const timers = clients.map((c, i) =>
      setTimeout(() => {
        c.send({ type: 'reconnect', delayMs: Math.floor(Math.random() * 250), reason: 'node draining' });
        c.close(CloseCode.Draining, 'node draining');
      }, i * step),
    );
    const deadline = Date.now() + this.opts.drainMs + 2000;
    while (hub.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const t of timers) clearTimeout(t);
    for (const c of hub) c.terminate('drain_deadline');
  }

  /** Writes pending counts and acked cursors now (otherwise every `flushMs`). */
  async flush(): Promise<void> {
    await this.apps.flush();
  }

  async stop(): Promise<void> {
    this.expiries.stop();
    clearInterval(this.heartbeat);
    clearInterval(this.sseHeartbeat);
    for (const c of this.connections) c.terminate();
    await this.apps.stop(this.nodes, this.nodeId);
    await this.app.close();
    await this.health?.close();
    await this.replicas.close();
  }
}
