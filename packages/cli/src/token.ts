import { checkDeviceTokenOptions, mintDeviceToken, TokenOptionError } from '@herald/token';
import { UsageError } from './errors.js';

export interface TokenOptions {
  secret: string;
  device: string;
  user: string;
  /** `topics` claim: patterns the device may subscribe to; absent or empty means any topic. */
  topics?: string[];
  /** A time span (`90s`, `30m`, `1h`, `7d`) or a number of seconds. */
  expires: string;
  /** `aud` claim: the device's app (docs/tenancy.md); absent: the app `default`. */
  app?: string;
}

const FLAGS: Record<string, string> = { expiresIn: 'expires', secret: 'secret' };

/** The launcher's error for a bad option, as a UsageError naming the flag (`--expires ...`). */
function asUsage(err: unknown): unknown {
  if (!(err instanceof TokenOptionError)) return err;
  return new UsageError(`--${FLAGS[err.option] ?? err.option} ${err.message}`);
}

/** Checks ids, topic patterns and the lifetime; throws a UsageError naming the bad flag. */
export function checkTokenOptions(o: Omit<TokenOptions, 'secret'>): void {
  try {
    checkDeviceTokenOptions({ device: o.device, user: o.user, topics: o.topics, expiresIn: o.expires });
  } catch (err) {
    throw asUsage(err);
  }
}

/**
 * A device token as the push nodes expect it (HS256, `sub` device, `uid` user, `exp`, optional
 * `topics`), minted by the one implementation the launcher and the system tests use too.
 */
export async function mintToken(o: TokenOptions): Promise<string> {
  try {
    return await mintDeviceToken({
      secret: o.secret,
      device: o.device,
      user: o.user,
      ...(o.topics && o.topics.length > 0 ? { topics: o.topics } : {}),
      expiresIn: o.expires,
      ...(o.app !== undefined ? { app: o.app } : {}),
    });
  } catch (err) {
    throw asUsage(err);
  }
}
