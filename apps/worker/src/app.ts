import type { Static, workerSchema } from '@herald/config';
import type { FanoutJob } from '@herald/protocol';
import {
  APP_ID,
  createDelivery,
  createRedis,
  DEFAULT_APP,
  Devices,
  FANOUT_QUEUE,
  Keys,
  queueOptions,
  ReplicaGate,
  StatusStore,
  Streams,
} from '@herald/store';
import { Queue, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Fanout, type FanoutResult } from './fanout.js';
import { createHealthServer } from './health.js';
import { lockedJob } from './lock.js';
import { WorkerMetrics } from './metrics.js';
import { orderKeys, TargetOrder } from './order.js';
import { type PresencePart, startPresence } from './presence/start.js';
import { startWebhooks, type WebhooksPart } from './webhooks/start.js';
import { pushOff, startWebPush, type WebPushPart } from './webpush/start.js';

export type WorkerConfig = Static<typeof workerSchema>;

export interface WorkerApp {
  worker: Worker<FanoutJob, FanoutResult>;
  fanout: Fanout;
  /** Debounced `device.online` / `device.offline` webhooks (presence/). */
  presence: PresencePart;
  metrics: WorkerMetrics;
  health: FastifyInstance;
  /** Address the health server listens on, e.g. http://127.0.0.1:8070. */
  healthUrl: string;
  /**
   * Stops taking jobs and waits for the running ones, at most `deadlineMs` (default
   * HERALD_SHUTDOWN_MS), then closes the server and connections. 'timeout' means running jobs
   * were abandoned: BullMQ sees them stall and another worker resumes them from their progress.
   */
  close(deadlineMs?: number): Promise<'closed' | 'timeout'>;
}

/** Wires connections, the fan-out, the BullMQ worker and the health server, and starts them. */
export async function startWorkerApp(cfg: WorkerConfig, log: Logger): Promise<WorkerApp> {
  const keys = new Keys(cfg.HERALD_REDIS_PREFIX);
  // BullMQ blocks on its own connection; streams, status and doorbells use another, so a slow
  // fan-out never delays job locks and a blocked BZPOPMIN never delays a fan-out.
  const redis = createRedis(cfg.REDIS_URL, 'background', 'herald-worker');
  const bull = createRedis(cfg.REDIS_URL, 'bullmq', 'herald-worker');
  // Only read, for the queue gauge at scrape time; it shares the background connection.
  const counts = new Queue<FanoutJob>(FANOUT_QUEUE, {
    connection: redis,
    ...queueOptions(keys),
    skipVersionCheck: true,
  });
  counts.on('error', () => {}); // the connection's own errors are logged and counted below
  const metrics = new WorkerMetrics({ jobCounts: (...states) => counts.getJobCounts(...states) });
  // Without a listener ioredis prints every reconnect error to stderr; log them once per outage.
  for (const [name, conn] of [
    ['background', redis],
    ['bullmq', bull],
  ] as const) {
    metrics.watch(conn);
    let down = false;
    conn.on('error', (err: Error) => {
      if (!down) log.warn({ err: err.message, connection: name }, 'redis connection error; reconnecting');
      down = true;
    });
    conn.on('ready', () => {
      if (down) log.info({ connection: name }, 'redis connection back');
      down = false;
    });
  }

  // HERALD_REDIS_MIN_REPLICAS: each fan-out step waits for the replicas (in its Delivery) before
  // its progress is saved, and the job for its final status before BullMQ completes it.
  const replicas = new ReplicaGate(
    {
      minReplicas: cfg.HERALD_REDIS_MIN_REPLICAS,
      timeoutMs: cfg.HERALD_REDIS_REPLICA_TIMEOUT_MS,
    },
    keys.replicaBarrier(),
  );
  // Web Push fallback (docs/webpush.md): on when the VAPID keys are set; each app's checks on its Keys.
  // Webhooks (docs/webhooks.md): on when some app has an endpoint (or an apps file may add one).
  const webhooks: WebhooksPart | undefined = startWebhooks({ cfg, redis, bull, keys, log, metrics });
  const webpush: WebPushPart | undefined = startWebPush({
    cfg,
    redis,
    bull,
    keys,
    log,
    metrics,
    ...(webhooks ? { webhookEvents: (app: string | undefined) => webhooks.wants(app) } : {}),
  });
  const presence = startPresence({
    redis,
    keys,
    apps: () => webhooks?.deviceApps() ?? [],
    windowMs: cfg.HERALD_PRESENCE_DEBOUNCE_MS,
    log,
  });
  /** The fan-out of each app, on its Keys (built on its first job; app ids are checked by forApp). */
  const fanouts = new Map<string, Fanout>();
  const fanoutOf = (app: string): Fanout => {
    let f = fanouts.get(app);
    if (f) return f;
    const k = keys.forApp(app);
    const streams = new Streams(redis, k, {
      inboxMaxLen: cfg.HERALD_INBOX_MAXLEN,
      topicMaxLen: cfg.HERALD_TOPIC_MAXLEN,
      keepMs: cfg.HERALD_STREAM_KEEP_S * 1000,
    });
    const devices = new Devices(redis, k, cfg.HERALD_DEVICE_RETENTION_S * 1000);
    // keepMs only matters when a status is created, which the API does; the worker only counts.
    const status = new StatusStore(redis, k, 0);
    f = new Fanout({
      delivery: createDelivery({ redis, keys: k, streams, status, devices, replicas }),
      devices,
      status,
      chunk: cfg.HERALD_FANOUT_CHUNK,
      log,
      observer: metrics,
      push: webpush?.scheduler ?? pushOff(log),
    });
    fanouts.set(app, f);
    return f;
  };
  const fanout = fanoutOf(DEFAULT_APP);

  const order = new TargetOrder();
  const worker = new Worker<FanoutJob, FanoutResult>(
    FANOUT_QUEUE,
    // Concurrent jobs, but two for the same target are appended in the order they were accepted.
    // A job stops at its next chunk once this worker has lost its lock (lock.ts).
    (job, token, signal) => {
      const locked = lockedJob(job, token, signal, lockHeld);
      // A job from before apps has no app: the default app's, as it was then.
      const app = typeof job.data.app === 'string' && APP_ID.test(job.data.app) ? job.data.app : DEFAULT_APP;
      return order.run(orderKeys(job.data.to, app), () =>
        metrics.job(job.data, async () => {
          const result = await fanoutOf(app).process(locked);
          await replicas.confirm(redis);
          return result;
        }),
      );
    },
    {
      connection: bull,
      prefix: queueOptions(keys).prefix,
      concurrency: cfg.HERALD_WORKER_CONCURRENCY,
      // A killed worker's job is resumed once its lock expires and a stalled check sees it: at
      // BullMQ's defaults (30 s lock, 30 s checks) issue #12 measured 60-67 s for a user fan-out
      // after a kill -9; at 6 s and 1.5 s, recovery.test.ts bounds it (docs/operations.md).
      lockDuration: cfg.HERALD_JOB_LOCK_MS,
      stalledInterval: cfg.HERALD_STALLED_CHECK_MS,
      maxStalledCount: cfg.HERALD_MAX_STALLED,
    },
  );
  const lockHeld = async (id: string, token: string) =>
    (await redis.get(worker.toKey(`${id}:lock`))) === token;
  // A renewal that finds the lock gone or taken: stop the job (its next step throws LockLost).
  worker.on('lockRenewalFailed', (ids: string[]) => {
    for (const id of ids) {
      log.warn({ id }, 'fan-out lost its lock; stopping it, another worker resumes it');
      worker.cancelJob(id, 'lock lost');
    }
  });
  // A worker must never die or drop jobs silently.
  worker.on('error', (err) => log.error({ err }, 'fan-out worker error'));
  worker.on('failed', (job, err) => {
    const attempts = job?.opts.attempts ?? 1;
    const final = !job || job.attemptsMade >= attempts || err.name === 'UnrecoverableError';
    const fields = { id: job?.id, attempt: job?.attemptsMade, attempts, err };
    if (final) log.error(fields, 'fan-out failed for good');
    else log.warn(fields, 'fan-out failed; it will be retried');
  });
  worker.on('stalled', (id) => log.warn({ id }, 'fan-out stalled (worker lost its lock); it will resume'));

  let closing: Promise<'closed' | 'timeout'> | undefined;
  // Not ready from the moment shutdown starts, even while running jobs finish.
  const health = createHealthServer({
    redis,
    worker: { isRunning: () => !closing && worker.isRunning() },
    metrics: metrics.registry,
    onRedisError: () => metrics.redisErrors.inc(),
  });
  let healthUrl: string;
  try {
    healthUrl = await health.listen({ host: cfg.HERALD_HOST, port: cfg.HERALD_PORT });
  } catch (err) {
    await worker.close(true);
    await webpush?.close(true);
    await presence.close();
    await webhooks?.close(true);
    await counts.close().catch(() => {});
    redis.disconnect();
    bull.disconnect();
    throw err;
  }
  log.info(
    {
      health: healthUrl,
      concurrency: cfg.HERALD_WORKER_CONCURRENCY,
      chunk: cfg.HERALD_FANOUT_CHUNK,
      lockMs: cfg.HERALD_JOB_LOCK_MS,
      stalledCheckMs: cfg.HERALD_STALLED_CHECK_MS,
    },
    'fan-out worker started',
  );

  const close = (deadlineMs = cfg.HERALD_SHUTDOWN_MS) => {
    closing ??= (async () => {
      // No new jobs; let the running ones finish, but not forever: with Redis away they never
      // would, and an abandoned job is resumed elsewhere from its saved progress.
      const finished = Promise.all([
        worker.close(),
        webpush?.close(),
        presence.close(),
        webhooks?.close(),
      ]).then(
        () => 'closed' as const,
        (err: unknown) => {
          log.warn({ err }, 'error while closing the BullMQ worker');
          return 'closed' as const;
        },
      );
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), deadlineMs);
      });
      const outcome = await Promise.race([finished, deadline]);
      clearTimeout(timer);
      await health.close();
      await replicas.close();
      // The gauge's queue only reads; with Redis away its close must not hold the exit up.
      const countsClosed = counts.close().catch(() => {});
      if (outcome === 'closed') {
        await countsClosed;
        // BullMQ does not close a connection it was given: quit gracefully, or drop it if Redis is away.
        await Promise.all([redis, bull].map((c) => c.quit().catch(() => c.disconnect())));
      } else {
        log.warn(
          { deadlineMs },
          'running fan-outs did not finish in time; they will resume on another worker',
        );
        redis.disconnect();
        bull.disconnect();
      }
      return outcome;
    })();
    return closing;
  };

  return { worker, fanout, presence, metrics, health, healthUrl, close };
}
