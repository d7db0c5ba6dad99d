import { loadConfig, workerSchema } from '@herald/config';
import type { FanoutJob } from '@herald/protocol';
import { type RedisHandle, startRedis as startStackRedis } from '@herald/stack';
import type { RedisClient as Redis } from '@herald/store';
import { createDelivery, type Delivery, Devices, Keys, Presence, StatusStore, Streams } from '@herald/store';
import { pino } from 'pino';
import { Fanout, type FanoutDeps, type FanoutJobHandle } from '../src/fanout.js';

/** Resolves when `check` does, polling every 20 ms; rejects after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A worker app's config for tests: on 127.0.0.1, a free port, silent, `env` on top. */
export function workerConfig(redisUrl: string, prefix: string, env: Record<string, string> = {}) {
  return loadConfig(workerSchema, {
    REDIS_URL: redisUrl,
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: '0',
    HERALD_REDIS_PREFIX: prefix,
    HERALD_LOG_LEVEL: 'silent',
    ...env,
  });
}

export type TestRedis = RedisHandle;

/** A throwaway redis-server on a free port, without persistence; stop() ends it by PID. */
export function startRedis(): Promise<TestRedis> {
  return startStackRedis({ appendonly: false });
}

/** Messages received on some channels, with a bounded wait for a condition on them. */
export class Inbox {
  readonly messages: { channel: string; message: string }[] = [];
  constructor(sub: Redis) {
    sub.on('message', (channel: string, message: string) => this.messages.push({ channel, message }));
  }
  on(channel: string): string[] {
    return this.messages.filter((m) => m.channel === channel).map((m) => m.message);
  }
  /**
   * Publishes a marker on `channel` (after whatever the code under test published, since Redis
   * delivers one channel's messages in order) and waits for it, so "no more messages" is certain.
   */
  async settle(pub: Redis, channel: string): Promise<string[]> {
    const marker = `__marker__${Math.random()}`;
    await pub.publish(channel, marker);
    await until(`marker on ${channel}`, () => this.on(channel).includes(marker));
    return this.on(channel).filter((m) => !m.startsWith('__marker__'));
  }
}

export const silent = pino({ level: 'silent' });

export interface World {
  keys: Keys;
  streams: Streams;
  devices: Devices;
  status: StatusStore;
  presence: Presence;
  delivery: Delivery;
  deps: FanoutDeps;
  fanout: Fanout;
}

/** The store parts and a fan-out on `prefix`, for the app `app` (default: the deployment's keys). */
export function world(redis: Redis, prefix: string, chunk = 500, app = 'default'): World {
  const keys = new Keys(prefix).forApp(app);
  const streams = new Streams(redis, keys, { inboxMaxLen: 10_000, topicMaxLen: 10_000, keepMs: 60_000 });
  const devices = new Devices(redis, keys, 3_600_000);
  const status = new StatusStore(redis, keys, 60_000);
  const presence = new Presence(redis, keys, 60_000);
  const delivery = createDelivery({ redis, keys, streams, status, devices });
  const deps: FanoutDeps = { delivery, devices, status, chunk, log: silent };
  return { keys, streams, devices, status, presence, delivery, deps, fanout: new Fanout(deps) };
}

let counter = 0;
/** A new notification id and a status for it in state `state`, like the API creates. */
export async function notification(
  w: World,
  to: FanoutJob['to'],
  opts: { state?: 'queued' | 'scheduled'; ttlMs?: number; data?: string } = {},
): Promise<FanoutJob> {
  const now = Date.now();
  const id = `n${++counter}-${now}`;
  const exp = now + (opts.ttlMs ?? 60_000);
  const target =
    'devices' in to ? 'devices' : 'users' in to ? 'users' : 'topic' in to ? 'topic' : 'broadcast';
  await w.status.create(id, { state: opts.state ?? 'queued', target, createdAt: now, exp });
  const job: FanoutJob = { id, to, data: opts.data ?? JSON.stringify({ n: counter }), ts: now, exp };
  if (w.keys.appId !== 'default') job.app = w.keys.appId;
  return job;
}

/** A stand-in for a BullMQ job that keeps its progress like the real one does across attempts. */
export function stubJob(data: FanoutJob, progress: object | number = 0) {
  const job = {
    data,
    progress: progress as FanoutJobHandle['progress'],
    updates: [] as unknown[],
    async updateProgress(p: FanoutJobHandle['progress']) {
      job.progress = p;
      job.updates.push(p);
    },
  };
  return job;
}
