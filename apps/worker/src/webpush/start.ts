import { AppRegistry } from '@herald/config';
import type { WebPushJob } from '@herald/protocol';
import {
  APP_ID,
  DEFAULT_APP,
  Devices,
  queueOptions,
  StatusStore,
  WEBPUSH_QUEUE,
  WebhookOutbox,
  WebPushStore,
} from '@herald/store';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { WorkerPartDeps } from '../part.js';
import { WebPushMetrics } from './metrics.js';
import { type AppStores, WebPushProcessor, type WebPushResult } from './processor.js';
import { PushScheduler } from './scheduler.js';
import { type VapidKeys, WebPushSender } from './sender.js';

export interface WebPushPart {
  scheduler: PushScheduler;
  processor: WebPushProcessor;
  worker: Worker<WebPushJob, WebPushResult>;
  metrics: WebPushMetrics;
  close(force?: boolean): Promise<void>;
}

export interface WebPushStartDeps extends WorkerPartDeps {
  /** Webhook event types an app's endpoints want (webhooks/start.ts): pushed / failed events. */
  webhookEvents?: (app: string | undefined) => ReadonlySet<string> | undefined;
}

/**
 * The Web Push part of the worker: the check queue, its BullMQ worker and the senders. Off
 * (undefined) without HERALD_VAPID_PUBLIC_KEY and HERALD_VAPID_PRIVATE_KEY and without an apps
 * file (whose apps may have their own `vapid` pair): a fan-out then schedules no check (the API
 * refuses `push` without a public key).
 */
export function startWebPush(d: WebPushStartDeps): WebPushPart | undefined {
  const { cfg, log } = d;
  const global = Boolean(cfg.HERALD_VAPID_PUBLIC_KEY && cfg.HERALD_VAPID_PRIVATE_KEY);
  if (!global && !cfg.HERALD_APPS_FILE) {
    log.info('web push off: HERALD_VAPID_PUBLIC_KEY and HERALD_VAPID_PRIVATE_KEY are not both set');
    return undefined;
  }
  if (global && !cfg.HERALD_VAPID_SUBJECT)
    throw new Error('HERALD_VAPID_SUBJECT (mailto: or https: contact) is required with the VAPID keys');
  // Only for the apps' own VAPID pairs (the fan-out needs no apps: a job carries its app). It
  // follows SIGHUP and file changes as the API's and the nodes' do.
  const apps = cfg.HERALD_APPS_FILE
    ? new AppRegistry({ HERALD_APPS_FILE: cfg.HERALD_APPS_FILE }, { log }).watch()
    : undefined;
  const queue = new Queue<WebPushJob>(WEBPUSH_QUEUE, {
    connection: d.redis,
    ...queueOptions(d.keys),
    skipVersionCheck: true,
  });
  queue.on('error', () => {}); // the connection's own errors are logged and counted by app.ts
  const senderOf = (vapid: VapidKeys) =>
    new WebPushSender({
      vapid,
      timeoutMs: cfg.HERALD_WEBPUSH_TIMEOUT_MS,
      allowLocalHttp: cfg.HERALD_WEBPUSH_ALLOW_LOCAL_HTTP,
    });
  // HERALD_VAPID_*: the pair of every app without its own.
  const sender = global
    ? senderOf({
        publicKey: cfg.HERALD_VAPID_PUBLIC_KEY,
        privateKey: cfg.HERALD_VAPID_PRIVATE_KEY,
        subject: cfg.HERALD_VAPID_SUBJECT,
      })
    : undefined;
  // Each app's stores on its Keys (docs/tenancy.md), made on its first job: a job from before
  // apps has none (default); a malformed app id cannot be retried into working.
  const perApp = new Map<string, AppStores>();
  const stores = (app: string | undefined): AppStores => {
    const id = app ?? DEFAULT_APP;
    let s = perApp.get(id);
    if (s) return s;
    if (!APP_ID.test(id)) throw new UnrecoverableError(`invalid app ${JSON.stringify(id.slice(0, 64))}`);
    const keys = d.keys.forApp(id);
    s = {
      keys,
      webpush: new WebPushStore(d.redis, keys, {
        // Only put() uses these; the worker only reads and removes.
        maxPerDevice: 1,
        retentionMs: cfg.HERALD_DEVICE_RETENTION_S * 1000,
      }),
      devices: new Devices(d.redis, keys, cfg.HERALD_DEVICE_RETENTION_S * 1000),
      // keepMs only matters when a status is created, which the API does; the worker only counts.
      status: new StatusStore(d.redis, keys, 0),
      outbox: new WebhookOutbox(d.redis, keys),
    };
    const vapid = apps?.get(id)?.vapid;
    if (vapid) s.sender = senderOf(vapid);
    else if (!sender)
      throw new UnrecoverableError(`app ${id} has no VAPID keys and HERALD_VAPID_* are not set`);
    perApp.set(id, s);
    return s;
  };
  // A reload may change an app's VAPID pair: stores and senders are made again on the next job.
  apps?.onChange(() => perApp.clear());
  const metrics = new WebPushMetrics(d.metrics.registry);
  const processor = new WebPushProcessor({
    stores,
    ...(sender ? { sender } : {}),
    retries: queue,
    chunk: cfg.HERALD_FANOUT_CHUNK,
    concurrency: cfg.HERALD_WEBPUSH_CONCURRENCY,
    maxAttempts: cfg.HERALD_WEBPUSH_MAX_ATTEMPTS,
    retryMs: cfg.HERALD_WEBPUSH_RETRY_MS,
    log,
    observer: metrics,
    ...(d.webhookEvents ? { webhookEvents: d.webhookEvents } : {}),
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
      apps?.close();
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
