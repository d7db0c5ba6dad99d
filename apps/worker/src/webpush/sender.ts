import { endpointProblem, type PushUrgency } from '@herald/protocol';
import type { StoredSubscription } from '@herald/store';
import webpush from 'web-push';

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
  subject: string;
}

export interface PushRequest {
  /** The push message's JSON text: encrypted to the subscription (RFC 8291 aes128gcm). */
  message: string;
  /** Seconds the push service may keep it: the notification's remaining TTL. */
  ttlS: number;
  urgency?: PushUrgency;
  topic?: string;
}

/** What one send came to; only the status code and host are ever logged, never the payload. */
export type PushOutcome =
  | { result: 'sent'; status: number }
  /** 404/410: the subscription is gone; remove it, do not retry. */
  | { result: 'gone'; status: number }
  /** 429, 5xx or no answer: retry, not before `retryAfterMs` when the push service said so. */
  | { result: 'retry'; status: number; retryAfterMs: number }
  /** Any other answer (4xx): recorded, not retried. */
  | { result: 'failed'; status: number; reason: string };

/**
 * Sends Web Push messages with the `web-push` library's encryption and VAPID signing
 * (`generateRequestDetails`) and Node's own fetch: the library's `sendNotification` speaks only
 * https.request, and a local push service in tests listens on http://127.0.0.1
 * (HERALD_WEBPUSH_ALLOW_LOCAL_HTTP, checked here again before any request leaves).
 */
export class WebPushSender {
  /** VAPID Authorization header per push-service origin, reused until an hour before it expires. */
  private readonly vapidHeaders = new Map<string, { value: string; until: number }>();

  constructor(private readonly o: { vapid: VapidKeys; timeoutMs: number; allowLocalHttp: boolean }) {}

  /**
   * The VAPID JWT (RFC 8292) depends only on the push service's origin and its expiry, so it is
   * signed once per origin for 12 hours (the RFC allows 24) instead of once per message. In
   * test/system/webpush.test.ts (300 pushes, after = 3 s, one run each on the shared 2-core
   * machine) the last push arrived 8.3 s after the publish with a signature per push, 7.0 s with this.
   */
  private vapidHeader(endpoint: string, now: number): string {
    const audience = new URL(endpoint).origin;
    const hit = this.vapidHeaders.get(audience);
    if (hit && hit.until > now) return hit.value;
    const exp = Math.floor(now / 1000) + 12 * 3600;
    const { vapid } = this.o;
    const h = webpush.getVapidHeaders(
      audience,
      vapid.subject,
      vapid.publicKey,
      vapid.privateKey,
      'aes128gcm',
      exp,
    );
    if (this.vapidHeaders.size >= 1000) this.vapidHeaders.clear(); // bounded: a few push services in practice
    this.vapidHeaders.set(audience, { value: h.Authorization, until: (exp - 3600) * 1000 });
    return h.Authorization;
  }

  async send(sub: StoredSubscription, req: PushRequest, now = Date.now()): Promise<PushOutcome> {
    const problem = endpointProblem(sub.endpoint, {
      allowedHosts: [],
      allowLocalHttp: this.o.allowLocalHttp,
    });
    if (problem) return { result: 'failed', status: 0, reason: problem };
    let details: ReturnType<typeof webpush.generateRequestDetails>;
    try {
      details = webpush.generateRequestDetails({ endpoint: sub.endpoint, keys: sub.keys }, req.message, {
        headers: { Authorization: this.vapidHeader(sub.endpoint, now) },
        TTL: Math.max(0, Math.floor(req.ttlS)),
        contentEncoding: 'aes128gcm',
        ...(req.urgency ? { urgency: req.urgency } : {}),
        ...(req.topic ? { topic: req.topic } : {}),
      });
    } catch (err) {
      // Bad subscription keys (not a P-256 point, short auth): sending can never work.
      return { result: 'failed', status: 0, reason: (err as Error).message };
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(details.headers)) {
      // fetch computes Content-Length itself.
      if (k.toLowerCase() !== 'content-length') headers[k] = String(v);
    }
    let res: Response;
    try {
      res = await fetch(details.endpoint, {
        method: 'POST',
        headers,
        body: details.body ?? undefined,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      await res.body?.cancel();
    } catch {
      return { result: 'retry', status: 0, retryAfterMs: 0 };
    }
    const status = res.status;
    if (status >= 200 && status < 300) return { result: 'sent', status };
    if (status === 404 || status === 410) return { result: 'gone', status };
    if (status === 429 || status >= 500)
      return { result: 'retry', status, retryAfterMs: retryAfterMs(res.headers.get('retry-after'), now) };
    return { result: 'failed', status, reason: `push service answered ${status}` };
  }
}

/** Retry-After as seconds or an HTTP date (RFC 9110 10.2.3), in ms from now; 0 when absent or bad. */
export function retryAfterMs(v: string | null, now = Date.now()): number {
  if (!v) return 0;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : 0;
}
