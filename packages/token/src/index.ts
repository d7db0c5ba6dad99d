// The one device-token minter of the repo: `herald token` and `herald subscribe` (packages/cli),
// the launcher's banner (infra/local), the console's demo device (apps/api), the benchmark and the
// system tests use it. A package of its own, so none of those has to depend on another.
import { isValidId, isValidTopic, MAX_TOPIC_LENGTH } from '@herald/protocol';
import { SignJWT } from 'jose';

export interface MintDeviceTokenOptions {
  /** HERALD_TOKEN_SECRET: the HS256 key is its UTF-8 bytes. */
  secret: string;
  /** `sub` claim. */
  device: string;
  /** `uid` claim. */
  user: string;
  /** `topics` claim: topic patterns the device may subscribe to; absent means any topic, `[]` none. */
  topics?: string[];
  /** A time span (`90s`, `30m`, `1h`, `7d`), or seconds as a number or digits (default `1h`). */
  expiresIn?: string | number;
  /**
   * `aud` claim: the id of the app the device belongs to (docs/tenancy.md). Absent: no `aud`,
   * which nodes read as the app `default`.
   */
  app?: string;
}

/** A bad option of `mintDeviceToken`; `option` names it, so a CLI can name its flag. */
export class TokenOptionError extends Error {
  constructor(
    readonly option: keyof MintDeviceTokenOptions,
    message: string,
  ) {
    super(message);
    this.name = 'TokenOptionError';
  }
}

/** An app id (docs/tenancy.md); the same rule as the apps file. */
const APP_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

const SPAN =
  /^\d+(\.\d+)?\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks|y|yr|yrs|year|years)?$/i;
/** A topic pattern: words, `*` for one segment, a last `>` (or `**`) for any further segments. */
const PATTERN = /^(?:(?:[A-Za-z0-9_-]+|\*)\.)*(?:[A-Za-z0-9_-]+|\*|>|\*\*)$/;

/** Checks ids, topic patterns and the lifetime as the push nodes will; throws a TokenOptionError. */
export function checkDeviceTokenOptions(o: Omit<MintDeviceTokenOptions, 'secret'>): void {
  if (!isValidId(o.device))
    throw new TokenOptionError('device', `${JSON.stringify(o.device)} is not a valid id`);
  if (!isValidId(o.user)) throw new TokenOptionError('user', `${JSON.stringify(o.user)} is not a valid id`);
  if (o.app !== undefined && !APP_ID.test(o.app))
    throw new TokenOptionError(
      'app',
      `${JSON.stringify(o.app)} is not an app id (a-z 0-9 and -, starting with a letter or digit, at most 32)`,
    );
  for (const t of o.topics ?? [])
    if (!(isValidTopic(t) || PATTERN.test(t)) || t.length > MAX_TOPIC_LENGTH)
      throw new TokenOptionError(
        'topics',
        `${JSON.stringify(t)} is not a topic pattern (news, news.*, news.>)`,
      );
  const span = o.expiresIn ?? '1h';
  if (typeof span === 'number' ? !(Number.isSafeInteger(span) && span > 0) : !SPAN.test(span.trim()))
    throw new TokenOptionError(
      'expiresIn',
      `${JSON.stringify(span)} is not a duration (90s, 30m, 1h, 7d, or seconds)`,
    );
}

/**
 * A device token (JWT, HS256) as apps/node expects it: `sub` = device, `uid` = user, optional
 * `topics`, `exp`, and `aud` = the app when `app` is given.
 */
export async function mintDeviceToken(o: MintDeviceTokenOptions): Promise<string> {
  if (!o.secret) throw new TokenOptionError('secret', 'the token secret is empty');
  checkDeviceTokenOptions(o);
  const claims: Record<string, unknown> = { uid: o.user };
  if (o.topics !== undefined) claims.topics = o.topics;
  if (o.app !== undefined) claims.aud = o.app;
  const span = typeof o.expiresIn === 'string' ? o.expiresIn.trim() : (o.expiresIn ?? '1h');
  const exp =
    typeof span === 'number' || /^\d+$/.test(span) ? Math.floor(Date.now() / 1000) + Number(span) : span;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.device)
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(o.secret));
}
export * from './verify.js';
