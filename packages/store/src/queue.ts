import type { FanoutJob } from '@herald/protocol';
import type { Keys } from './keys.js';

/** The BullMQ queue between the API and the fan-out worker. */
export const FANOUT_QUEUE = 'fanout';
export const FANOUT_JOB = 'fanout';

export type { FanoutJob };

/** Queue options both sides must agree on (prefix keeps the queue in one cluster slot). */
export function queueOptions(keys: Keys): { prefix: string } {
  return { prefix: keys.queuePrefix() };
}

/**
 * BullMQ `priority` of a fan-out job per publish priority: high before normal before low.
 * BullMQ 6 takes every job without a priority (0: its wait list, FIFO, what every job was before
 * priorities) before any prioritized one (a sorted set scored priority * 2^32 + a counter, so
 * FIFO within a priority; moveToActive.lua), so high is 0 and keeps the old O(1) path, normal
 * and low are 1 and 2 and pay a ZADD and an INCR at add and a ZPOPMIN at take (O(log n) in the
 * queued jobs). Measured on this machine's Redis 7.0 behind a backlog of 5,000 jobs, 2,000 adds
 * then all taken by one worker (concurrency 1), two runs each: add 71-100 us per job either way,
 * take and complete 138-165 us unprioritized against 186-193 us prioritized, within this shared
 * machine's run-to-run spread and small beside the fan-out itself, which appends per device.
 * The reverse (normal unprioritized, high `lifo`) would keep normal as it was but take a burst
 * of high jobs newest first.
 */
export const FANOUT_PRIORITY = { high: 0, normal: 1, low: 2 } as const;

/** Job options: the notification id is the job id, so a retried add cannot enqueue twice. */
export function fanoutJobOptions(id: string, delayMs = 0, priority: 'high' | 'normal' | 'low' = 'normal') {
  const p = FANOUT_PRIORITY[priority];
  return {
    jobId: id,
    delay: delayMs > 0 ? delayMs : undefined,
    priority: p > 0 ? p : undefined,
    attempts: 10,
    backoff: { type: 'exponential' as const, delay: 500 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 86400 },
  };
}

/** The worker's Web Push check jobs (docs/webpush.md): delayed by the policy's `after`. */
export const WEBPUSH_QUEUE = 'webpush';
export const WEBPUSH_JOB = 'webpush';

/**
 * A check job's options: its id names the notification and the chunk, so a fan-out step that
 * runs again does not schedule a second check. BullMQ retries only errors of the job itself
 * (Redis); push-service failures are retried by new jobs with their own delay (Retry-After).
 */
export function webpushJobOptions(jobId: string, delayMs: number) {
  return {
    jobId,
    delay: delayMs > 0 ? delayMs : undefined,
    attempts: 5,
    backoff: { type: 'exponential' as const, delay: 500 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 86400 },
  };
}
