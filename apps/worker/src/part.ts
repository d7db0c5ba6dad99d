import type { Static, workerSchema } from '@herald/config';
import type { Keys, RedisClient } from '@herald/store';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics.js';

/** What a part of the worker (Web Push, webhooks) is started with (app.ts wires them). */
export interface WorkerPartDeps {
  cfg: Static<typeof workerSchema>;
  /** Background connection: the part's own reads and writes. */
  redis: RedisClient;
  /** BullMQ's connection (a Worker duplicates it for its blocking reads). */
  bull: RedisClient;
  /** The deployment's keys (app `default`); `Keys.forApp` gives each app's. */
  keys: Keys;
  log: Logger;
  metrics: WorkerMetrics;
}
