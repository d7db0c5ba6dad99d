import { createHash } from 'node:crypto';
import { type FanoutJob, topicStream, type WebPushJob } from '@herald/protocol';
import { type Delivered, type DeliveryTarget, WEBPUSH_JOB, webpushJobOptions } from '@herald/store';
import type { RetryQueue } from './processor.js';

/**
 * Schedules the Web Push check of a delivery (docs/webpush.md): for a fan-out with a `push`
 * policy, one delayed job per delivered chunk of device inboxes (with each device's seq) or
 * one per topic publish (the topic's seq; the check walks its members). The job id names the
 * notification and the chunk, so a fan-out step that runs again schedules nothing new.
 */
export class PushScheduler {
  constructor(private readonly queue: RetryQueue) {}

  async afterDelivery(n: FanoutJob, to: DeliveryTarget, d: Delivered): Promise<void> {
    const push = n.push;
    if (!push) return;
    const base: WebPushJob = {
      id: n.id,
      ...(n.app ? { app: n.app } : {}),
      exp: n.exp,
      stream: 'inbox',
      message: push.message,
      ...(push.urgency ? { urgency: push.urgency } : {}),
      ...(push.topic ? { pushTopic: push.topic } : {}),
    };
    const delay = push.after * 1000;
    if ('devices' in to) {
      if (!d.seqs || d.seqs.length === 0) return;
      const hash = createHash('sha256')
        .update(d.seqs.map(([device]) => device).join('\n'))
        .digest('hex')
        .slice(0, 12);
      await this.queue.add(
        WEBPUSH_JOB,
        { ...base, items: d.seqs },
        webpushJobOptions(`wp.${n.id}.d.${hash}`, delay),
      );
    } else if ('topic' in to && d.seq !== undefined) {
      await this.queue.add(
        WEBPUSH_JOB,
        { ...base, stream: topicStream(to.topic), topic: to.topic, seq: d.seq },
        webpushJobOptions(`wp.${n.id}.t`, delay),
      );
    }
    // broadcast: the API refuses a push policy there (docs/webpush.md).
  }
}
