import type { PushUrgency } from './webpush.js';

/** What a publish is addressed to. Exactly one kind per notification. */
export type Target = { devices: string[] } | { users: string[] } | { topic: string } | { broadcast: true };

export type TargetKind = 'devices' | 'users' | 'topic' | 'broadcast';

/** A publish's priority (docs/api.md): the worker's queue order, the frame's `priority`, Web Push Urgency. */
export type Priority = 'high' | 'normal' | 'low';
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

/**
 * A publish's `collapseKey` (docs/api.md): 1 to 64 of A-Z a-z 0-9 and `_ - . : ~`, so it goes
 * into a Redis hash field and a log line as is.
 */
export const COLLAPSE_KEY_RE = /^[A-Za-z0-9_.:~-]{1,64}$/;
export const MAX_COLLAPSE_KEY_LENGTH = 64;

/** Most device or user ids one publish may name; bigger audiences belong in a topic. */
export const MAX_TARGET_IDS = 10_000;

export function targetKind(to: Target): TargetKind {
  if ('devices' in to) return 'devices';
  if ('users' in to) return 'users';
  if ('topic' in to) return 'topic';
  return 'broadcast';
}

/** The fan-out job the API enqueues and the worker runs. */
export interface FanoutJob {
  id: string;
  to: Target;
  /** The notification's data, as the JSON text the publisher sent: stored and sent without re-encoding. */
  data: string;
  /** Accept time, ms since epoch. */
  ts: number;
  /** Expiry, ms since epoch: never delivered after this. */
  exp: number;
  /** Web Push fallback (docs/webpush.md): the check jobs the worker schedules after delivering. */
  push?: { after: number; message: string; urgency?: PushUrgency; topic?: string };
  /** The app the notification belongs to (docs/tenancy.md); absent (jobs from before apps) = `default`. */
  app?: string;
  /** `collapseKey` of the publish: a newer entry with the same key supersedes this one on a stream. */
  collapseKey?: string;
  /** `priority` of the publish when it is not normal. */
  priority?: 'high' | 'low';
}

/** Notification lifecycle as reported by `GET /v1/notifications/:id`. */
export type NotificationState = 'scheduled' | 'queued' | 'sending' | 'sent' | 'cancelled' | 'expired';

export interface NotificationStatus {
  id: string;
  state: NotificationState;
  target: TargetKind;
  createdAt: string;
  deliverAt?: string;
  expiresAt: string;
  counts: {
    targets: number;
    delivered: number;
    acked: number;
    expired: number;
    /** Web Push messages accepted by push services. */
    pushed: number;
    /** Web Push messages refused for good (gone subscription, 4xx, retries exhausted). */
    pushFailed: number;
  };
}
