import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';
import { withScripts } from './scripts.js';

/** One app's connections on this node. */
export interface AppCount {
  keys: Keys;
  connections: number;
}

export interface NodeInfo {
  id: string;
  lastSeen: number;
  connections: number;
}

/**
 * Registry of live push nodes, for the admin API and operators, and the per-app connection
 * counts of each node, which nodes sum to enforce an app's connection cap across all nodes.
 * Every key here has the `{nodes}` tag: a pipeline or script over them is one slot.
 */
export class Nodes {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {
    withScripts(redis);
  }

  async heartbeat(nodeId: string, connections: number, now = Date.now()): Promise<void> {
    const k = this.keys;
    await this.redis
      .pipeline()
      .zadd(k.nodes(), now, nodeId)
      .hset(k.nodeConnections(), nodeId, connections)
      .exec();
  }

  async remove(nodeId: string, apps: readonly Keys[] = []): Promise<void> {
    const p = this.redis.pipeline().zrem(this.keys.nodes(), nodeId).hdel(this.keys.nodeConnections(), nodeId);
    for (const a of apps) p.hdel(a.appConnections(), nodeId);
    await p.exec();
  }

  /**
   * Writes this node's connection count of each app and returns each app's connections on the
   * other nodes whose heartbeat is within `withinMs` (one script call for all the apps); a dead
   * node's counts are dropped.
   */
  async appConnections(
    nodeId: string,
    apps: readonly AppCount[],
    withinMs: number,
    now = Date.now(),
  ): Promise<number[]> {
    if (apps.length === 0) return [];
    const keys = [this.keys.nodes(), ...apps.map((a) => a.keys.appConnections())];
    return this.redis.heraldAppConnections(
      keys.length,
      ...keys,
      now - withinMs,
      nodeId,
      ...apps.map((a) => a.connections),
    );
  }

  /** Nodes seen within `withinMs`. */
  async list(withinMs: number, now = Date.now()): Promise<NodeInfo[]> {
    const k = this.keys.nodes();
    const ids = await this.redis.zrangebyscore(k, now - withinMs, '+inf', 'WITHSCORES');
    const out: NodeInfo[] = [];
    for (let i = 0; i + 1 < ids.length; i += 2)
      out.push({ id: ids[i] as string, lastSeen: Number(ids[i + 1]), connections: 0 });
    if (out.length) {
      const counts = await this.redis.hmget(this.keys.nodeConnections(), ...out.map((n) => n.id));
      out.forEach((n, i) => {
        n.connections = Number(counts[i] ?? 0);
      });
    }
    return out;
  }
}
