import type { Static, workerSchema } from '@herald/config';
import type { WebPushJob } from '@herald/protocol';
import {
  type Devices,
  type Keys,
  queueOptions,
  type RedisClient,
  type StatusStore,
  WEBPUSH_QUEUE,
  WebPushStore,
} from '@herald/store';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { WorkerMetrics } from '../metrics.js';
import { WebPushMetrics } from './metrics.js';
import { type AppStores, WebPushProcessor, type WebPushResult } from './processor.js';
import { PushScheduler } from './scheduler.js';
import { WebPushSender } from './sender.js';

export interface WebPushPart {
  scheduler: PushScheduler;
  processor: WebPushProcessor;
  worker: Worker<WebPushJob, WebPushResult>;
  metrics: WebPushMetrics;
  close(force?: boolean): Promise<void>;
}

export interface WebPushStartDeps {
  cfg: Static<typeof workerSchema>;
  /** Background connection: checks, status counts, scheduling. */
  redis: RedisClient;
  /** BullMQ's connection (the Worker duplicates it for its blocking reads). */
  bull: RedisClient;
  /** The default app's keys. */
  keys: Keys;
  devices: Devices;
  status: StatusStore;
  log: Logger;
  metrics: WorkerMetrics;
}

/**
 * The Web Push part of the worker: the check queue, its BullMQ worker and the sender. Off
 * (undefined) without HERALD_VAPID_PUBLIC_KEY and HERALD_VAPID_PRIVATE_KEY: a fan-out then
 * schedules no check (the API refuses `push` without a public key).
 */
export function startWebPush(d: WebPushStartDeps): WebPushPart | undefined {
  const { cfg, log } = d;
  if (!cfg.HERALD_VAPID_PUBLIC_KEY || !cfg.HERALD_VAPID_PRIVATE_KEY) {
    log.info('web push off: HERALD_VAPID_PUBLIC_KEY and HERALD_VAPID_PRIVATE_KEY are not both set');
    return undefined;
  }
  if (!cfg.HERALD_VAPID_SUBJECT)
    throw new Error('HERALD_VAPID_SUBJECT (mailto: or https: contact) is required with the VAPID keys');
  const queue = new Queue<WebPushJob>(WEBPUSH_QUEUE, {
    connection: d.redis,
    ...queueOptions(d.keys),
    skipVersionCheck: true,
  });
  queue.on('error', () => {}); // the connection's own errors are logged and counted by app.ts
  const defaults: AppStores = {
    keys: d.keys,
    webpush: new WebPushStore(d.redis, d.keys, {
      // Only put() uses these; the worker only reads and removes.
      maxPerDevice: 1,
      retentionMs: cfg.HERALD_DEVICE_RETENTION_S * 1000,
    }),
    devices: d.devices,
    status: d.status,
  };
  // Issue #18 (multi-tenancy) maps an app id to its own Keys (Keys.forApp): until it lands only
  // the default app exists, and a job naming another is a bug.
  const stores = (app: string | undefined): AppStores => {
    if (app === undefined || app === 'default') return defaults;
    throw new UnrecoverableError(`unknown app ${app}`);
  };
  const metrics = new WebPushMetrics(d.metrics.registry);
  const sender = new WebPushSender({
    vapid: {
      publicKey: cfg.HERALD_VAPID_PUBLIC_KEY,
      privateKey: cfg.HERALD_VAPID_PRIVATE_KEY,
      subject: cfg.HERALD_VAPID_SUBJECT,
    },
    timeoutMs: cfg.HERALD_WEBPUSH_TIMEOUT_MS,
    allowLocalHttp: cfg.HERALD_WEBPUSH_ALLOW_LOCAL_HTTP,
  });
  const processor = new WebPushProcessor({
    stores,
    sender,
    retries: queue,
    chunk: cfg.HERALD_FANOUT_CHUNK,
    concurrency: cfg.HERALD_WEBPUSH_CONCURRENCY,
    maxAttempts: cfg.HERALD_WEBPUSH_MAX_ATTEMPTS,
    retryMs: cfg.HERALD_WEBPUSH_RETRY_MS,
    log,
    observer: metrics,
  });
  const worker = new Worker<WebPushJob, WebPushResult>(WEBPUSH_QUEUE, (job) => processor.process(job), {
    connection: d.bull,
    prefix: queueOptions(d.keys).prefix,
    concurrency: cfg.HERALD_WORKER_CONCURRENCY,
    lockDuration: cfg.HERALD_JOB_LOCK_MS,
    stalledInterval: cfg.HERALD_STALLED_CHECK_MS,
    maxStalledCount: cfg.HERALD_MAX_STALLED,
  });
  worker.on('error', (err) => log.error({ err }, 'web push worker error'));
  worker.on('failed', (job, err) => log.warn({ id: job?.id, err }, 'web push check failed'));
  log.info({ concurrency: cfg.HERALD_WEBPUSH_CONCURRENCY }, 'web push on');
  return {
    scheduler: new PushScheduler(queue),
    processor,
    worker,
    metrics,
    async close(force = false) {
      await worker
        .close(force)
        .catch((err: unknown) => log.warn({ err }, 'error closing the web push worker'));
      await queue.close().catch(() => {});
    },
  };
}

/**
 * The fan-out's push hook on a worker without VAPID keys: warns (once per process) that a
 * notification asked for Web Push, instead of dropping the policy silently.
 */
export function pushOff(log: Logger): Pick<PushScheduler, 'afterDelivery'> {
  let warned = false;
  return {
    async afterDelivery(n) {
      if (!n.push || warned) return;
      warned = true;
      log.warn(
        { id: n.id },
        'a notification asks for Web Push but this worker has no VAPID keys (HERALD_VAPID_PUBLIC_KEY, HERALD_VAPID_PRIVATE_KEY): nothing is pushed',
      );
    },
  };
}
