import { hostname } from 'node:os';
import { AppRegistry, type WebhookEndpoint, wantedEvents } from '@herald/config';
import {
  DEFAULT_APP,
  queueOptions,
  StatusStore,
  WEBHOOK_QUEUE,
  WebhookDeadLetters,
  WebhookExpiries,
  type WebhookJob,
  WebhookOutbox,
} from '@herald/store';
import { Queue, Worker } from 'bullmq';
import type { WorkerPartDeps } from '../part.js';
import { WebhookMetrics } from './metrics.js';
import { WebhookPump } from './pump.js';
import { WebhookSender } from './sender.js';

/** How often an app's outbox is read when the last read found nothing. */
const POLL_MS = 250;

export interface WebhooksPart {
  sender: WebhookSender;
  /** The event types some endpoint of the app wants (undefined app: default). */
  wants(app: string | undefined): ReadonlySet<string> | undefined;
  /**
   * The apps some endpoint of which wants `device.online` or `device.offline` (the presence
   * debouncer runs for these only), as of the last apps (re)load.
   */
  deviceApps(): readonly string[];
  worker: Worker<WebhookJob>;
  close(force?: boolean): Promise<void>;
}

/**
 * Webhooks (docs/webhooks.md): one pump per app with endpoints (outbox -> BullMQ jobs) and the
 * BullMQ worker that sends the requests. Off (undefined) when no app has an endpoint and there
 * is no apps file to add one later. Endpoints follow SIGHUP and file changes.
 */
export function startWebhooks(d: WorkerPartDeps): WebhooksPart | undefined {
  const { cfg, log } = d;
  const apps = new AppRegistry(
    { HERALD_APPS_FILE: cfg.HERALD_APPS_FILE, HERALD_WEBHOOKS: cfg.HERALD_WEBHOOKS },
    { log },
  );
  if (!cfg.HERALD_APPS_FILE && !apps.all().some((a) => a.webhooks?.length)) {
    apps.close();
    return undefined;
  }
  apps.watch();
  const prefix = queueOptions(d.keys).prefix;
  const queue = new Queue<WebhookJob>(WEBHOOK_QUEUE, { connection: d.redis, prefix, skipVersionCheck: true });
  queue.on('error', () => {}); // the connection's own errors are logged and counted by app.ts
  const metrics = new WebhookMetrics(d.metrics.registry);
  const endpointsOf = (app: string): readonly WebhookEndpoint[] => apps.get(app)?.webhooks ?? [];
  const dead = new WebhookDeadLetters(d.redis, d.keys);
  const sender = new WebhookSender({
    endpoint: (app, id) => endpointsOf(app).find((e) => e.id === id),
    dead: async (app, letter) => {
      const dropped = await dead.withKeys(d.keys.forApp(app)).add(letter, cfg.HERALD_WEBHOOK_DEAD_MAX);
      if (dropped > 0)
        log.warn({ app, dropped }, 'oldest webhook dead letters dropped (HERALD_WEBHOOK_DEAD_MAX)');
    },
    gate: {
      concurrency: cfg.HERALD_WEBHOOK_ENDPOINT_CONCURRENCY,
      failures: cfg.HERALD_WEBHOOK_BREAKER_FAILURES,
      cooldownMs: cfg.HERALD_WEBHOOK_BREAKER_COOLDOWN_MS,
    },
    timeoutMs: cfg.HERALD_WEBHOOK_TIMEOUT_MS,
    log,
    observer: metrics,
  });
  const worker = new Worker<WebhookJob>(WEBHOOK_QUEUE, (job, token) => sender.process(job, token), {
    connection: d.bull,
    prefix,
    concurrency: cfg.HERALD_WEBHOOK_CONCURRENCY,
    lockDuration: Math.max(cfg.HERALD_JOB_LOCK_MS, cfg.HERALD_WEBHOOK_TIMEOUT_MS + 5000),
    stalledInterval: cfg.HERALD_STALLED_CHECK_MS,
    maxStalledCount: cfg.HERALD_MAX_STALLED,
  });
  worker.on('error', (err) => log.error({ err }, 'webhook worker error'));
  worker.on('failed', (job, err) => {
    if (err.name !== 'DelayedError')
      log.debug({ id: job?.id, attempt: job?.attemptsMade, err: err.message }, 'webhook request failed');
  });

  const consumer = `${hostname()}-${process.pid}`;
  const pumps = new Map<string, WebhookPump>();
  let deviceApps: readonly string[] = [];
  const sync = () => {
    deviceApps = apps
      .all()
      .filter((a) =>
        a.webhooks?.some((e) => e.events.includes('device.online') || e.events.includes('device.offline')),
      )
      .map((a) => a.id);
    const wanted = new Set(
      apps
        .all()
        .filter((a) => a.webhooks?.length)
        .map((a) => a.id),
    );
    for (const [id, pump] of pumps)
      if (!wanted.has(id)) {
        void pump.stop();
        pumps.delete(id);
      }
    for (const id of wanted) {
      if (pumps.has(id)) continue;
      const keys = d.keys.forApp(id);
      const pump = new WebhookPump({
        app: id,
        outbox: new WebhookOutbox(d.redis, keys),
        status: new StatusStore(d.redis, keys, 0),
        expiries: new WebhookExpiries(d.redis, keys),
        endpoints: () => endpointsOf(id),
        enqueue: (jobs) => queue.addBulk(jobs),
        consumer,
        batch: cfg.HERALD_WEBHOOK_BATCH,
        attempts: cfg.HERALD_WEBHOOK_MAX_ATTEMPTS,
        retryMs: cfg.HERALD_WEBHOOK_RETRY_MS,
        pollMs: POLL_MS,
        log,
      });
      pumps.set(id, pump);
      pump.start();
    }
  };
  sync();
  apps.onChange(sync);
  log.info({ apps: [...pumps.keys()], concurrency: cfg.HERALD_WEBHOOK_CONCURRENCY }, 'webhooks on');
  const wanted = new Map<string, ReadonlySet<string>>();
  apps.onChange(() => wanted.clear());
  return {
    sender,
    worker,
    deviceApps: () => deviceApps,
    wants(app) {
      const id = app ?? DEFAULT_APP;
      let w = wanted.get(id);
      if (!w) {
        w = wantedEvents(endpointsOf(id));
        if (wanted.size >= 10_000) wanted.clear();
        wanted.set(id, w);
      }
      return w;
    },
    async close(force = false) {
      apps.close();
      await Promise.all([...pumps.values()].map((p) => p.stop()));
      await worker
        .close(force)
        .catch((err: unknown) => log.warn({ err }, 'error closing the webhook worker'));
      await queue.close().catch(() => {});
    },
  };
}
