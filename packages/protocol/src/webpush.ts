/**
 * Web Push fallback (docs/webpush.md): the publish's `push` policy, the push message the service
 * worker receives, the checks on a subscription's endpoint, and the worker's check job.
 */

export type PushUrgency = 'very-low' | 'low' | 'normal' | 'high';

/** `push` in a publish body: send a Web Push to devices that have not acked within `after` seconds. */
export interface PushPolicy {
  /** Seconds without an ack before the push; 0 = push at once as well as live. */
  after: number;
  title?: string;
  body?: string;
  urgency?: PushUrgency;
  /** Web Push `Topic` header: the push service keeps only the newest message per topic. */
  topic?: string;
  /** Sent instead of the notification's `data` (a smaller payload). */
  payload?: unknown;
}

/**
 * Largest encrypted push message, per RFC 8291 section 4 (4096 octets, what push services must
 * accept), and the plaintext that fits in it with aes128gcm in one record: header 86 octets
 * (salt 16, rs 4, idlen 1, keyid 65), AEAD tag 16, padding delimiter 1.
 */
export const MAX_PUSH_MESSAGE_BYTES = 4096;
export const MAX_PUSH_PLAINTEXT_BYTES = MAX_PUSH_MESSAGE_BYTES - 86 - 16 - 1;

/** Web Push `Topic` header: up to 32 characters of the URL-safe base64 alphabet (RFC 8030 5.4). */
export const PUSH_TOPIC_RE = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * What the service worker gets (decrypted): enough to show the notification and to let the SDK
 * recognise it later (same `id` as the live copy). `data` is the policy's `payload` if given,
 * else the notification's `data`.
 */
export interface PushMessage {
  id: string;
  stream: string;
  title?: string;
  body?: string;
  data: unknown;
}

/** The push message's JSON text, built once at publish time (its size is checked there). */
export function pushMessageText(id: string, stream: string, policy: PushPolicy, dataText: string): string {
  const head: Record<string, unknown> = { id, stream };
  if (policy.title !== undefined) head.title = policy.title;
  if (policy.body !== undefined) head.body = policy.body;
  const data = policy.payload !== undefined ? JSON.stringify(policy.payload) : dataText;
  // data is JSON text already: spliced in, not parsed and re-encoded.
  return `${JSON.stringify(head).slice(0, -1)},"data":${data}}`;
}

/** Which endpoints a subscription may have (HERALD_WEBPUSH_ALLOWED_HOSTS, HERALD_WEBPUSH_ALLOW_LOCAL_HTTP). */
export interface EndpointRules {
  /** Host names, or `*.suffix` for any subdomain; empty = any https host. */
  allowedHosts: readonly string[];
  /** Test only: also `http://127.0.0.1:<port>/...`. */
  allowLocalHttp: boolean;
}

/** Why an endpoint is refused, or undefined when it is fine. */
export function endpointProblem(endpoint: string, rules: EndpointRules): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'endpoint is not a URL';
  }
  if (url.username || url.password) return 'endpoint must not carry credentials';
  if (url.protocol === 'http:' && rules.allowLocalHttp && url.hostname === '127.0.0.1') return undefined;
  if (url.protocol !== 'https:') return 'endpoint must be an https: URL';
  const host = url.hostname.toLowerCase();
  if (rules.allowedHosts.length === 0) return undefined;
  const ok = rules.allowedHosts.some((h) =>
    h.startsWith('*.') ? host.endsWith(h.slice(1)) && host.length > h.length - 1 : host === h,
  );
  return ok ? undefined : `endpoint host ${host} is not an allowed push service`;
}

/** Parses HERALD_WEBPUSH_ALLOWED_HOSTS. */
export function parseAllowedHosts(s: string): string[] {
  return s
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

/** A device's Web Push subscription as stored (endpoint and keys as the browser's PushSubscription gives them). */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  /** ms since epoch. */
  createdAt: number;
}

/**
 * The worker's delayed check job (queue `webpush`): after `after` seconds, push to the devices
 * of `items` (or every member of `topic`) whose cursor on `stream` is still below the entry's seq.
 */
export interface WebPushJob {
  /** Notification id. */
  id: string;
  /** Tenant (issue #18); absent = the default app. */
  app?: string;
  /** Notification expiry (ms): nothing is pushed after it; the push's TTL is what is left. */
  exp: number;
  /** The stream the entry is on for these devices: `inbox` or `topic:<name>`. */
  stream: string;
  /** [device, seq of the entry in its stream] for inbox deliveries and retries. */
  items?: [string, number][];
  /** Topic deliveries: every member of this topic, with `seq` the entry's seq in the topic stream. */
  topic?: string;
  seq?: number;
  /** Retries: only these subscription ids, per device. */
  only?: Record<string, string[]>;
  /** Retries: the attempt this is (1 = the first send). */
  attempt?: number;
  /** The push message's JSON text (pushMessageText). */
  message: string;
  urgency?: PushUrgency;
  pushTopic?: string;
}
