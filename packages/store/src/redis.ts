import { Cluster, type ClusterNode, Redis, type RedisOptions } from 'ioredis';

/** A single Redis (standalone or behind Sentinel) or a Redis Cluster: the store works on both. */
export type RedisClient = Redis | Cluster;

export type RedisRole =
  /** Request paths (API): fail fast while Redis is down so callers get 503, not a hang. */
  | 'request'
  /** Background work (nodes, worker): queue commands while reconnecting. */
  | 'background'
  /** Pub/sub subscriber connection. */
  | 'subscriber'
  /** BullMQ Worker/QueueEvents connections, which require maxRetriesPerRequest: null. */
  | 'bullmq';

/** Where Redis is, parsed from one URL (`REDIS_URL`). */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'sentinel'; sentinels: { host: string; port: number }[]; name: string; options: RedisOptions }
  | { kind: 'cluster'; nodes: ClusterNode[]; options: RedisOptions };

function hosts(list: string): { host: string; port: number }[] {
  return list.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    const host = i > 0 ? hp.slice(0, i) : hp;
    const port = i > 0 ? Number(hp.slice(i + 1)) : 6379;
    if (!host || !Number.isInteger(port) || port <= 0 || port > 65535)
      throw new Error(`bad host:port ${hp} in REDIS_URL`);
    return { host: host.replace(/^\[|\]$/g, ''), port };
  });
}

/**
 * `redis://` or `rediss://` is one server; `redis+sentinel://[:pass@]h1:p1,h2:p2/<master>` is a
 * Sentinel group; `redis+cluster://[:pass@]h1:p1,h2:p2` is a Redis Cluster (any reachable nodes
 * seed the topology).
 */
export function parseRedisUrl(url: string): RedisTarget {
  const m = /^redis\+(sentinel|cluster):\/\/(?:(?:[^:@/]*):([^@/]*)@)?([^/?]+)(?:\/([^?]*))?/.exec(url);
  if (!m) return { kind: 'single', url };
  const password = m[2] ? decodeURIComponent(m[2]) : undefined;
  const options: RedisOptions = password ? { password } : {};
  if (m[1] === 'cluster') return { kind: 'cluster', nodes: hosts(m[3]!), options };
  const name = m[4] || 'mymaster';
  return {
    kind: 'sentinel',
    sentinels: hosts(m[3]!),
    name,
    options: password ? { ...options, sentinelPassword: password } : options,
  };
}

/** Per-process tuning of a role's defaults. */
export interface RedisTuning {
  /** 'request' connections: fail a command that has no answer after this many ms (default 3000). */
  commandTimeout?: number;
}

function roleOptions(role: RedisRole, name: string, tuning: RedisTuning): RedisOptions {
  const base: RedisOptions = {
    connectionName: `${name}:${role}`,
    // Reconnect with capped backoff, forever: Redis coming back must heal every process.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectTimeout: 5000,
    keepAlive: 10_000,
  };
  switch (role) {
    case 'request':
      return {
        ...base,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: tuning.commandTimeout ?? 3000,
      };
    case 'background':
      return { ...base, maxRetriesPerRequest: 20 };
    case 'subscriber':
    case 'bullmq':
      return { ...base, maxRetriesPerRequest: null };
  }
}

/**
 * Creates a connection suited to its role; the caller owns and closes it. Commands issued in the
 * same tick are pipelined automatically (per node on a cluster), which is why the store batches
 * with Promise.all instead of MULTI/pipeline objects: those cannot span cluster slots.
 */
export function createRedis(
  url: string,
  role: RedisRole,
  name = 'herald',
  tuning: RedisTuning = {},
): RedisClient {
  const target = parseRedisUrl(url);
  const opts = roleOptions(role, name, tuning);
  const auto = role !== 'subscriber';
  switch (target.kind) {
    case 'single':
      return new Redis(url, { ...opts, enableAutoPipelining: auto });
    case 'sentinel':
      // ioredis asks the sentinels for the current master and follows failovers.
      return new Redis({
        ...opts,
        ...target.options,
        sentinels: target.sentinels,
        name: target.name,
        enableAutoPipelining: auto,
        // After a failover the old master refuses writes (READONLY) until ioredis moves on.
        reconnectOnError: (err) => err.message.startsWith('READONLY'),
      });
    case 'cluster':
      return new Cluster(target.nodes, {
        redisOptions: { ...opts, ...target.options },
        // Not auto-pipelined: ioredis then fails MOVED replies of a batch after a failover
        // instead of following them. Commands still go out without waiting for replies.
        enableAutoPipelining: false,
        enableOfflineQueue: opts.enableOfflineQueue ?? true,
        maxRedirections: 16,
        // Sharded pub/sub: a doorbell goes to the one shard owning its channel, not to every shard.
        shardedSubscribers: role === 'subscriber',
        slotsRefreshTimeout: 2000,
        // A subscriber issues no commands, so no MOVED tells it a failover moved its channels'
        // slots: poll the topology, so the sharded subscribers move (and the node resyncs).
        slotsRefreshInterval: 2000,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
      });
  }
}

export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * Redis error replies that mean "Redis cannot serve now" rather than "this command is wrong":
 * out of memory (noeviction), loading the AOF, a replica or a cluster in failover.
 */
const UNAVAILABLE_REPLIES = /^(OOM|LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS)\b/;

/**
 * True for errors from the Redis path that mean it is down or unreachable: connection refused or
 * closed, offline queue off, command timeout, retries exhausted. A plain ReplyError (e.g. a
 * WRONGTYPE or a script bug) is a server fault and stays a 500.
 */
export function isRedisOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return UNAVAILABLE_REPLIES.test(err.message);
  const code = (err as { code?: unknown }).code;
  if (code === 'HERALD_REDIS_UNAVAILABLE') return true;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTCONN|EHOSTUNREACH|ENOTFOUND)$/.test(code)
  )
    return true;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    // ioredis: a pipelined command cut off by the connection closing (a failover closes them).
    err.name === 'AbortError' ||
    // ioredis on a Cluster in failover: the slots cannot be refreshed, or the redirections ran out.
    err.name === 'ClusterAllFailedError' ||
    /Connection is closed|Stream isn't writeable|Command timed out|ECONNREFUSED|enableOfflineQueue|Too many Cluster redirections|None of startup nodes is available|Failed to refresh slots cache/.test(
      err.message,
    )
  );
}
