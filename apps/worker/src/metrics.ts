import { defaultMetricsOptions } from '@herald/config';
import type { FanoutJob } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { FanoutObserver, FanoutResult } from './fanout.js';

const TARGETS = ['devices', 'users', 'topic', 'broadcast'] as const;
/** `skipped`: not sent by this run for another reason (already sent by an earlier run, status gone). */
const RESULTS = ['sent', 'cancelled', 'expired', 'failed', 'skipped'] as const;
export const QUEUE_STATES = ['waiting', 'delayed', 'active', 'failed'] as const;

export type JobResult = (typeof RESULTS)[number];
type QueueState = (typeof QUEUE_STATES)[number] | 'prioritized';

/** Counts of the fan-out queue by state (BullMQ's `queue.getJobCounts`). */
export type JobCounts = (...states: QueueState[]) => Promise<Partial<Record<string, number>>>;

/** The job's target kind, or 'unknown' for malformed job data. */
export function targetOf(data: unknown): string {
  const to = (data as Partial<FanoutJob> | null)?.to as Record<string, unknown> | undefined;
  if (typeof to !== 'object' || to === null) return 'unknown';
  return TARGETS.find((t) => t in to) ?? 'unknown';
}

export function resultOf(r: FanoutResult): JobResult {
  if (r.outcome === 'sent' || r.outcome === 'expired') return r.outcome;
  if (r.state === 'cancelled' || r.state === 'expired') return r.state;
  return 'skipped';
}

/** Errors of the Redis path: an error reply, or the connection down, closed or timing out. */
export function isRedisError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError' || err.name === 'MaxRetriesPerRequestError') return true;
  const code = (err as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTCONN|EHOSTUNREACH)$/.test(code)
  )
    return true;
  return /Connection is closed|Stream isn't writeable|Command timed out/.test(err.message);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

export interface WorkerMetricsOptions {
  /** Read on every scrape for `herald_queue_jobs`; without it the gauge has no series. */
  jobCounts?: JobCounts;
  /** Bound on that read (default 1000 ms): a scrape never waits on a Redis that is away. */
  jobCountsTimeoutMs?: number;
  /** Node.js process metrics (default true). */
  defaultMetrics?: boolean;
}

/**
 * The worker's Prometheus metrics, in a Registry of its own. Default Node.js metrics keep their
 * standard names; every series carries `app="worker"`, like the API's carry `app="api"`.
 */
export class WorkerMetrics implements FanoutObserver {
  readonly registry = new Registry();
  readonly jobs: Counter<'target' | 'result'>;
  readonly jobDuration: Histogram<'target'>;
  readonly appends: Counter<'kind'>;
  readonly doorbells: Counter<'kind'>;
  readonly queueJobs: Gauge<'state'>;
  readonly redisErrors: Counter;

  constructor(opts: WorkerMetricsOptions = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ app: 'worker' });
    if (opts.defaultMetrics !== false) collectDefaultMetrics(defaultMetricsOptions(this.registry));
    this.jobs = new Counter({
      name: 'herald_fanout_jobs_total',
      help: 'Fan-out job runs by target kind and result: sent, cancelled, expired, failed (each failed attempt; it is retried), skipped (already sent, or no status).',
      labelNames: ['target', 'result'],
      registers,
    });
    for (const target of TARGETS) for (const result of RESULTS) this.jobs.inc({ target, result }, 0);
    this.jobDuration = new Histogram({
      name: 'herald_fanout_job_duration_seconds',
      help: 'Time one fan-out job run took, whatever its result, by target kind.',
      labelNames: ['target'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.appends = new Counter({
      name: 'herald_fanout_appends_total',
      help: 'Entries appended to streams: one per device inbox, one per topic or broadcast publish.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['inbox', 'topic', 'broadcast']) this.appends.inc({ kind }, 0);
    this.doorbells = new Counter({
      name: 'herald_doorbells_total',
      help: 'Doorbell messages published: inbox (one per node per chunk), stream (one per topic or broadcast publish).',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['inbox', 'stream']) this.doorbells.inc({ kind }, 0);
    this.redisErrors = new Counter({
      name: 'herald_redis_errors_total',
      help: "Redis connection 'error' events plus failed Redis commands the worker caught (jobs, probes, scrapes).",
      registers,
    });
    const jobCounts = opts.jobCounts;
    const timeoutMs = opts.jobCountsTimeoutMs ?? 1000;
    const redisErrors = this.redisErrors;
    this.queueJobs = new Gauge({
      name: 'herald_queue_jobs',
      help: 'Jobs in the fan-out queue by state, read at scrape time (no series while Redis does not answer).',
      labelNames: ['state'],
      registers,
      async collect() {
        if (!jobCounts) return;
        try {
          const counts = await withTimeout(jobCounts(...QUEUE_STATES, 'prioritized'), timeoutMs);
          // Normal and low publishes wait in BullMQ's prioritized set (FANOUT_PRIORITY, queue.ts):
          // `waiting` is every job waiting for a worker, whichever list holds it.
          counts.waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
          for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
        } catch {
          // Stale numbers would look like a stuck queue: report none instead.
          this.reset();
          redisErrors.inc();
        }
      },
    });
  }

  appended(kind: 'inbox' | 'topic' | 'broadcast', n: number): void {
    this.appends.inc({ kind }, n);
  }

  rang(kind: 'inbox' | 'stream', n: number): void {
    this.doorbells.inc({ kind }, n);
  }

  /** Runs one fan-out job, counting its result and timing it. */
  async job(data: unknown, run: () => Promise<FanoutResult>): Promise<FanoutResult> {
    const target = targetOf(data);
    const end = this.jobDuration.startTimer({ target });
    try {
      const r = await run();
      this.jobs.inc({ target, result: resultOf(r) });
      return r;
    } catch (err) {
      this.jobs.inc({ target, result: 'failed' });
      if (isRedisError(err)) this.redisErrors.inc();
      throw err;
    } finally {
      end();
    }
  }

  /** Counts the connection's 'error' events (one per failed connect attempt while Redis is away). */
  watch(redis: RedisClient): () => void {
    const onError = () => this.redisErrors.inc();
    redis.on('error', onError);
    return () => redis.off('error', onError);
  }
}
