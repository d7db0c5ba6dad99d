import { isValidId, isValidTopic, MAX_TOPIC_LENGTH } from '@herald/protocol';
import { SignJWT } from 'jose';
import { UsageError } from './errors.js';

export interface TokenOptions {
  secret: string;
  device: string;
  user: string;
  /** `topics` claim: patterns the device may subscribe to; absent means any topic. */
  topics?: string[];
  /** A jose time span (`90s`, `30m`, `1h`, `7d`) or a number of seconds. */
  expires: string;
}

const SPAN =
  /^\d+(\.\d+)?\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks|y|yr|yrs|year|years)?$/i;
/** A topic pattern: words, `*` for one segment, a last `>` (or `**`) for any further segments. */
const PATTERN = /^(?:(?:[A-Za-z0-9_-]+|\*)\.)*(?:[A-Za-z0-9_-]+|\*|>|\*\*)$/;

/** Checks ids, topic patterns and the lifetime; throws a UsageError naming the bad flag. */
export function checkTokenOptions(o: Omit<TokenOptions, 'secret'>): void {
  if (!isValidId(o.device)) throw new UsageError(`--device ${JSON.stringify(o.device)} is not a valid id`);
  if (!isValidId(o.user)) throw new UsageError(`--user ${JSON.stringify(o.user)} is not a valid id`);
  for (const t of o.topics ?? [])
    if (!(isValidTopic(t) || PATTERN.test(t)) || t.length > MAX_TOPIC_LENGTH)
      throw new UsageError(`--topics ${JSON.stringify(t)} is not a topic pattern (news, news.*, news.>)`);
  if (!SPAN.test(o.expires.trim()))
    throw new UsageError(`--expires ${JSON.stringify(o.expires)} is not a duration (90s, 30m, 1h, 7d)`);
}

/** A device token as the push nodes expect it: HS256, `sub` device, `uid` user, `exp`, optional `topics`. */
export async function mintToken(o: TokenOptions): Promise<string> {
  checkTokenOptions(o);
  const claims: Record<string, unknown> = { uid: o.user };
  if (o.topics && o.topics.length > 0) claims.topics = o.topics;
  const span = o.expires.trim();
  const exp = /^\d+$/.test(span) ? Math.floor(Date.now() / 1000) + Number(span) : span;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.device)
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(o.secret));
}
