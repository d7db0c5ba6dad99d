import type { RedisClient, ReplicaSettings } from '@herald/store';
import type { Logger } from 'pino';
import type { NodeApp } from './app-scope.js';
import type { TokenVerifierOptions } from './auth.js';
import type { NodeLimits } from './ports.js';

/** What a push node is started with (main.ts builds it from the settings). */
export interface NodeOptions {
  nodeId: string;
  host: string;
  port: number;
  redisPrefix: string;
  /**
   * The apps the node serves (docs/tenancy.md); without it, the single app `default` from
   * `tokens` and `allowedOrigins`. `reloadApps` applies a new list.
   */
  apps?: readonly NodeApp[];
  /** HERALD_METRICS_APP_LABEL: the app id as the `tenant` label (first 100), else `all`. */
  metricsAppLabel?: boolean;
  /** Token keys of the app `default` when `apps` is not given. */
  tokens?: TokenVerifierOptions;
  /** Allowed browser Origins of the app `default` when `apps` is not given; undefined allows any. */
  allowedOrigins?: string[] | undefined;
  /** Mark the device-token cookie `Secure` on every request (HERALD_COOKIE_SECURE). */
  cookieSecure?: boolean;
  /** HERALD_REDIS_MIN_REPLICAS: deliver only what that many replicas hold (default: none). */
  replicas?: ReplicaSettings;
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
  /** Pending-connection queue of the listening socket (capped by the kernel's somaxconn). */
  listenBacklog?: number;
  /** Longest a long-poll is held (HERALD_POLL_MAX_WAIT_S; default 60 s). */
  pollMaxWaitMs?: number;
  /** SSE heartbeat comment interval (default 15 s, below common proxy idle timeouts). */
  sseHeartbeatMs?: number;
  limits: NodeLimits;
}

export interface NodeDeps {
  /** Commands (reads, presence, flushes). */
  redis: RedisClient;
  /** Pub/sub subscriber; a connection of its own. */
  sub: RedisClient;
  log: Logger;
}
