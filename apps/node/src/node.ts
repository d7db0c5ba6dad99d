import websocket from '@fastify/websocket';
import { CloseCode } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import { Devices, Keys, Nodes, Presence, StatusStore, Streams, Subscriber } from '@herald/store';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { TokenVerifier, type TokenVerifierOptions } from './auth.js';
import { Broker } from './broker.js';
import { Client } from './client.js';
import type { NodeContext, NodeLimits } from './context.js';
import { Flusher } from './flusher.js';
import { Hub } from './hub.js';
import { nodeMetrics } from './metrics.js';
import { clientAddress, installProxyProtocol } from './proxy-protocol.js';
import { TokenBucket } from './rate.js';
import { Stats } from './stats.js';

export interface NodeOptions {
  nodeId: string;
  host: string;
  port: number;
  redisPrefix: string;
  tokens: TokenVerifierOptions;
  /** Allowed browser Origins; undefined allows any. */
  allowedOrigins: string[] | undefined;
  /** Plain HTTP port for probes and metrics (0: only on the main port). */
  healthPort: number;
  /** Expect a PROXY protocol header from the balancer on every connection. */
  proxyProtocol: boolean;
  /** New connections per second. */
  acceptRate: number;
  maxFrameBytes: number;
  presenceTtlMs: number;
  flushMs: number;
  drainMs: number;
  deviceRetentionMs: number;
  limits: NodeLimits;
}

export interface NodeDeps {
  /** Commands (reads, presence, flushes). */
  redis: RedisClient;
  /** Pub/sub subscriber; a connection of its own. */
  sub: RedisClient;
  log: Logger;
}

/**
 * A push node: wires the hub of local clients, the doorbell broker, the flusher and the
 * heartbeat around one Fastify server that serves `/v1/ws`, `/healthz` and `/readyz`.
 */
export class HeraldNode {
  readonly app: FastifyInstance;
  readonly ctx: NodeContext;
  private readonly nodes: Nodes;
  private heartbeat: NodeJS.Timeout | undefined;
  private draining = false;
  private readonly accepts: TokenBucket;
  private health: FastifyInstance | undefined;
  private started = false;

  constructor(
    private readonly opts: NodeOptions,
    private readonly deps: NodeDeps,
  ) {
    const keys = new Keys(opts.redisPrefix);
    const { redis, log } = deps;
    const hub = new Hub();
    const stats = new Stats();
    for (const r of [redis, deps.sub]) r.on('error', () => stats.redisErrors++);
    const devices = new Devices(redis, keys, opts.deviceRetentionMs);
    this.nodes = new Nodes(redis, keys);
    this.ctx = {
      nodeId: opts.nodeId,
      limits: opts.limits,
      log,
      keys,
      // The node only reads streams; the limits matter to the worker's appends.
      streams: new Streams(redis, keys, { inboxMaxLen: 0, topicMaxLen: 0, keepMs: 0 }),
      devices,
      presence: new Presence(redis, keys, opts.presenceTtlMs),
      verifier: new TokenVerifier(opts.tokens),
      hub,
      broker: new Broker(new Subscriber(deps.sub), keys, opts.nodeId, hub, log),
      flusher: new Flusher(new StatusStore(redis, keys, 0), devices, opts.flushMs, log),
      stats,
    };
    this.accepts = new TokenBucket(opts.acceptRate, opts.acceptRate);
    this.app = Fastify({ loggerInstance: log as FastifyBaseLogger, disableRequestLogging: true });
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
      this.ctx.hub.size < this.opts.limits.maxConnections
    );
  }

  async start(): Promise<number> {
    const { app, ctx } = this;
    await app.register(websocket, {
      options: { maxPayload: this.opts.maxFrameBytes, perMessageDeflate: false },
      // Closing sockets is the drain's job, with reconnect hints; not the plugin's.
      preClose: (done) => done(),
      // Protocol errors (oversized, bad UTF-8, bad framing) are the peer's: ws is already sending
      // the close code (1009, 1007, 1002...) and must be left to finish the close handshake, so
      // no terminate here (it would turn the close into a TCP reset) and no error-level log that
      // any client could flood.
      errorHandler: (err, socket, req) => {
        req.log.debug({ err: err.message }, 'websocket error');
        if (socket.readyState === socket.OPEN) socket.close(CloseCode.Internal, 'internal error');
      },
    });
    const origins = this.opts.allowedOrigins ? new Set(this.opts.allowedOrigins) : undefined;
    app.get(
      '/v1/ws',
      {
        websocket: true,
        // Browsers always send Origin; native clients do not and are let through. Refused before
        // the upgrade, so a page on another site cannot even open the socket.
        preValidation: async (req, reply) => {
          const origin = req.headers.origin;
          if (origins && origin !== undefined && !origins.has(origin))
            return reply
              .code(403)
              .send({ code: 'HERALD_ORIGIN_FORBIDDEN', message: `origin ${origin} is not allowed` });
        },
      },
      (socket, req) => {
        if (this.draining) return socket.close(CloseCode.Draining, 'node draining');
        if (ctx.hub.size >= this.opts.limits.maxConnections)
          return socket.close(CloseCode.Capacity, 'node at capacity');
        if (!this.accepts.take()) return socket.close(CloseCode.Capacity, 'accept rate exceeded');
        new Client(ctx, socket, clientAddress(req.raw.socket) ?? req.ip).start();
      },
    );
    const metrics = nodeMetrics(this.opts.nodeId, ctx.stats, ctx.hub);
    this.probes(app, metrics);
    if (this.opts.healthPort > 0) {
      // Probes and scrapers do not speak PROXY protocol: give them a plain port of their own.
      this.health = Fastify({
        loggerInstance: this.deps.log as FastifyBaseLogger,
        disableRequestLogging: true,
      });
      this.probes(this.health, metrics);
      await this.health.listen({ host: this.opts.host, port: this.opts.healthPort });
    }

    // Only trusted when the operator says the balancer sends it: a header on a direct
    // connection to a node that does not expect one is an HTTP parse error, never an address.
    installProxyProtocol(app.server, {
      mode: this.opts.proxyProtocol ? 'required' : 'off',
      timeoutMs: this.opts.limits.helloTimeoutMs,
      onError: (err) => ctx.log.debug({ err: err.message }, 'PROXY protocol header refused'),
    });
    await ctx.broker.start();
    ctx.flusher.start();
    this.heartbeat = setInterval(() => void this.beat(), ctx.limits.heartbeatMs);
    this.heartbeat.unref();
    await app.listen({ host: this.opts.host, port: this.opts.port });
    this.started = true;
    await this.nodes.heartbeat(ctx.nodeId, 0).catch(() => undefined);
    const addr = app.server.address();
    return typeof addr === 'object' && addr ? addr.port : this.opts.port;
  }

  /** `/metrics`, `/healthz` and `/readyz` on a server. */
  private probes(app: FastifyInstance, metrics: Registry): void {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (_req, reply) => {
      if (this.isReady()) return { status: 'ready', connections: this.ctx.hub.size };
      const why = this.draining
        ? 'draining'
        : this.ctx.hub.size >= this.opts.limits.maxConnections
          ? 'at capacity'
          : 'redis unavailable';
      return reply.code(503).send({ code: 'HERALD_NOT_READY', message: why });
    });
  }

  /** Pings every socket, drops those that did not answer the last ping, refreshes presence. */
  private async beat(): Promise<void> {
    const { hub, presence, nodeId, log } = this.ctx;
    for (const c of hub.connections) {
      if (!c.alive) {
        c.terminate();
        continue;
      }
      c.alive = false;
      c.ping();
    }
    try {
      await presence.refresh(hub.devices(), nodeId);
      await this.nodes.heartbeat(nodeId, hub.size);
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
    const { hub, log } = this.ctx;
    log.info({ connections: hub.size, drainMs: this.opts.drainMs }, 'draining');
    this.app.server.close();
    const clients = [...hub.connections];
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
    for (const c of hub.connections) c.terminate('drain_deadline');
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const c of this.ctx.hub.connections) c.terminate();
    await this.ctx.flusher.stop().catch(() => undefined);
    await this.nodes.remove(this.ctx.nodeId).catch(() => undefined);
    await this.app.close();
    await this.health?.close();
  }
}
