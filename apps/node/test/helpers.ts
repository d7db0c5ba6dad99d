import { createRedis } from '@herald/store';
import pino from 'pino';
import { HeraldNode, type NodeOptions } from '../src/node.js';

export const SECRET = 'test-secret-0123456789';

type Limits = NodeOptions['limits'];

/** A push node in this process on a free port of 127.0.0.1, against the given Redis. */
export function makeNode(
  redisUrl: string,
  limits: Partial<Limits> = {},
  opts: Partial<Omit<NodeOptions, 'limits'>> = {},
  log: pino.Logger = pino({ level: 'silent' }),
): HeraldNode {
  return new HeraldNode(
    {
      nodeId: 'node-t',
      host: '127.0.0.1',
      port: 0,
      redisPrefix: 'herald',
      tokens: { secret: SECRET },
      allowedOrigins: undefined,
      acceptRate: 10_000,
      proxyProtocol: false,
      healthPort: 0,
      maxFrameBytes: 4096,
      presenceTtlMs: 60_000,
      flushMs: 20,
      drainMs: 500,
      deviceRetentionMs: 86_400_000,
      ...opts,
      limits: {
        heartbeatMs: 60_000,
        helloTimeoutMs: 2000,
        maxTopics: 16,
        slowConsumerBytes: 1 << 20,
        replayBatch: 100,
        maxConnections: 1000,
        maxConnectionsPerUser: 100,
        frameRate: 1000,
        ...limits,
      },
    },
    {
      redis: createRedis(redisUrl, 'background'),
      sub: createRedis(redisUrl, 'subscriber'),
      log,
    },
  );
}
