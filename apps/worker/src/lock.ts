import type { FanoutJob } from '@herald/protocol';
import type { Job } from 'bullmq';
import type { FanoutJobHandle } from './fanout.js';

/** Thrown into a fan-out whose job this worker no longer holds: another worker resumes it. */
export class LockLost extends Error {
  override readonly name = 'LockLost';
}

/** Whether the job's BullMQ lock still holds `token` (it is gone or another worker's otherwise). */
export type LockCheck = (jobId: string, token: string) => Promise<boolean>;

/**
 * The job as the fan-out sees it, but it stops at its next step once this worker has lost the
 * job's lock: before every progress save the lock is read (one GET per chunk) and the abort
 * signal checked (BullMQ aborts it when a lock renewal fails). A worker that stalled past its
 * lock (event loop or Redis paused longer than about half of HERALD_JOB_LOCK_MS) has its job
 * handed to another worker by the stalled check; without this it would go on appending next to
 * the new owner. With it, the two overlap by at most the chunk in flight, whose appends the SDK
 * drops as duplicates by notification id.
 */
export function lockedJob(
  job: Job<FanoutJob>,
  token: string | undefined,
  signal: AbortSignal | undefined,
  holds: LockCheck,
): FanoutJobHandle {
  const id = job.id ?? '';
  const check = async () => {
    const lost = signal?.aborted || (token !== undefined && !(await holds(id, token)));
    if (lost) throw new LockLost(`fan-out ${id} lost its lock; stopping here, another worker resumes it`);
  };
  return {
    data: job.data,
    get progress() {
      return job.progress;
    },
    updateProgress: async (progress) => {
      await check();
      await job.updateProgress(progress);
    },
  };
}
