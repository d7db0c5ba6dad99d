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

/** Job options: the notification id is the job id, so a retried add cannot enqueue twice. */
export function fanoutJobOptions(id: string, delayMs = 0) {
  return {
    jobId: id,
    delay: delayMs > 0 ? delayMs : undefined,
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
