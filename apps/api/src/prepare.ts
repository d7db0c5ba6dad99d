import { createHash } from 'node:crypto';
import { PUSH_TOPIC_RE, type Target } from '@herald/protocol';
import type { ApiConfig } from './config.js';
import { BadRequest, DataTooLarge } from './errors.js';
import { type PreparedPush, preparePush } from './push-policy.js';
import type { PublishBody } from './schemas.js';
import { webpushOf } from './tenant-keys.js';

/** What a publish has been checked and resolved to, before anything is written. */
export interface Prepared {
  to: Target;
  data: string;
  ttlMs: number;
  /** Absolute delivery time when it is in the future, else undefined (send now). */
  deliverAt: number | undefined;
  /** Web Push fallback: always through the worker, which schedules the checks (docs/webpush.md). */
  push?: PreparedPush;
  collapseKey?: string;
  /** Not normal (normal is the default and stored as nothing). */
  priority?: 'high' | 'low';
  /** The publishing key has webhook endpoints: record it (and the expiry when wanted). */
  hook?: WebhookMark;
}

/** What a publish records for webhooks (docs/webhooks.md): the key's id, and whether it wants expiries. */
export interface WebhookMark {
  key: string;
  expired: boolean;
}

/**
 * Checks a publish body against the API's limits and resolves it (target, data, TTL, schedule,
 * Web Push, collapse key, priority), before anything is written.
 */
export function preparePublish(
  body: PublishBody,
  now: number,
  config: ApiConfig,
  app: string | undefined,
  hook?: WebhookMark,
): Prepared {
  const data = JSON.stringify(body.data);
  const bytes = Buffer.byteLength(data);
  if (bytes > config.maxDataBytes) throw new DataTooLarge(bytes, config.maxDataBytes);
  let deliverAt: number | undefined;
  if (body.deliverAt !== undefined) {
    const at = Date.parse(body.deliverAt);
    if (!Number.isFinite(at)) throw new BadRequest('deliverAt is not a valid date-time');
    if (at - now > config.maxScheduleAheadS * 1000)
      throw new BadRequest(`deliverAt is more than ${config.maxScheduleAheadS} s ahead`);
    // A time in the past (or now) means "send now": clocks differ, and late beats never.
    if (at > now) deliverAt = at;
  }
  const to = normaliseTarget(body.to);
  const ttlMs = (body.ttl ?? config.ttlDefaultS) * 1000;
  // The app's own VAPID key when the apps file gives it one (docs/webpush.md).
  const webpush = webpushOf(config.webpush, config.apps.get(app ?? 'default'));
  const push = preparePush(body.push, to, data, ttlMs, webpush);
  const p: Prepared = { to, data, ttlMs, deliverAt, ...(push ? { push } : {}), ...(hook ? { hook } : {}) };
  if (body.collapseKey !== undefined) p.collapseKey = body.collapseKey;
  if (body.priority === 'high' || body.priority === 'low') p.priority = body.priority;
  return p;
}

/**
 * The Web Push Topic for a collapseKey (RFC 8030 5.4: at most 32 of the URL-safe base64
 * alphabet): the key itself when it is one, else the first 32 characters (192 bits) of its
 * SHA-256 in base64url, so every key of the wider collapseKey alphabet and length maps to one
 * valid Topic, the same on every publish.
 */
export function pushTopicOf(collapseKey: string): string {
  if (PUSH_TOPIC_RE.test(collapseKey)) return collapseKey;
  return createHash('sha256').update(collapseKey).digest('base64url').slice(0, 32);
}

/** collapseKey and priority, only when set (an entry without them stores nothing for them). */
export function entryOptions(p: Prepared): { collapseKey?: string; priority?: 'high' | 'low' } {
  const o: { collapseKey?: string; priority?: 'high' | 'low' } = {};
  if (p.collapseKey !== undefined) o.collapseKey = p.collapseKey;
  if (p.priority !== undefined) o.priority = p.priority;
  return o;
}

/** Drops duplicate ids: a device named twice must get the notification once. */
function normaliseTarget(to: PublishBody['to']): Target {
  if (to.devices) return { devices: [...new Set(to.devices)] };
  if (to.users) return { users: [...new Set(to.users)] };
  if (to.topic !== undefined) return { topic: to.topic };
  return { broadcast: true };
}
