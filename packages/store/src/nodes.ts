import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

export interface NodeInfo {
  id: string;
  lastSeen: number;
  connections: number;
}

/** Registry of live push nodes, for the admin API and operators; nodes never read it themselves. */
export class Nodes {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  async heartbeat(nodeId: string, connections: number, now = Date.now()): Promise<void> {
    const k = this.keys;
    await this.redis
      .pipeline()
      .zadd(k.nodes(), now, nodeId)
      .hset(k.nodeConnections(), nodeId, connections)
      .exec();
  }

  async remove(nodeId: string): Promise<void> {
    await this.redis
      .pipeline()
      .zrem(this.keys.nodes(), nodeId)
      .hdel(this.keys.nodeConnections(), nodeId)
      .exec();
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
