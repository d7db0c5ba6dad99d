import {
  MAX_PUSH_PLAINTEXT_BYTES,
  type PushPolicy,
  pushMessageText,
  type Target,
  topicStream,
} from '@herald/protocol';
import { BadRequest, PushTooLarge } from './errors.js';

/** The API's Web Push settings (docs/webpush.md). */
export interface WebPushApiConfig {
  /** HERALD_VAPID_PUBLIC_KEY ('' = Web Push off: `push` refused, GET /v1/webpush/key 404). */
  publicKey: string;
  /** HERALD_WEBPUSH_ALLOWED_HOSTS, parsed. */
  allowedHosts: string[];
  /** HERALD_WEBPUSH_ALLOW_LOCAL_HTTP (tests). */
  allowLocalHttp: boolean;
  /** HERALD_WEBPUSH_MAX_PER_DEVICE. */
  maxPerDevice: number;
  /** HERALD_WEBPUSH_DEFAULT_AFTER_S: -1 = no default policy. */
  defaultAfterS: number;
}

/** A checked policy; the message is built at accept, once the id is known (same length every time). */
export interface PreparedPush {
  policy: PushPolicy;
  stream: string;
}

/** A UUIDv7 is 36 characters: the message's size is known before the id is drawn. */
const ID_PLACEHOLDER = '00000000-0000-7000-8000-000000000000';

/**
 * Checks a publish's `push` (or applies the configured default) against the target and the
 * 4 KB limit of push services. Undefined: nothing is pushed.
 */
export function preparePush(
  given: PushPolicy | undefined,
  to: Target,
  data: string,
  ttlMs: number,
  cfg: WebPushApiConfig | undefined,
): PreparedPush | undefined {
  let policy = given;
  if (!policy && cfg && cfg.publicKey && cfg.defaultAfterS >= 0 && !('broadcast' in to))
    policy = { after: cfg.defaultAfterS };
  if (!policy) return undefined;
  if (!cfg?.publicKey)
    throw new BadRequest(
      'push needs Web Push, which this API has no VAPID key for (HERALD_VAPID_PUBLIC_KEY)',
    );
  if ('broadcast' in to) throw new BadRequest('push is for devices, users and topics, not broadcast');
  if (policy.after * 1000 >= ttlMs) throw new BadRequest('push.after must be less than the ttl');
  const stream = 'topic' in to ? topicStream(to.topic) : 'inbox';
  const bytes = Buffer.byteLength(pushMessageText(ID_PLACEHOLDER, stream, policy, data));
  if (bytes > MAX_PUSH_PLAINTEXT_BYTES) throw new PushTooLarge(bytes, MAX_PUSH_PLAINTEXT_BYTES);
  return { policy, stream };
}
