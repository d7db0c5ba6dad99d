import { SignJWT } from 'jose';

export interface MintDeviceTokenOptions {
  /** HERALD_TOKEN_SECRET: the HS256 key is its UTF-8 bytes. */
  secret: string;
  /** `sub` claim. */
  device: string;
  /** `uid` claim. */
  user: string;
  /** `topics` claim: topic patterns the device may subscribe to. */
  topics?: string[];
  /** A jose time span ('1h', '30m', '7d') or seconds (default '1h'). */
  expiresIn?: string | number;
}

/** A device token (JWT, HS256) as apps/node expects it: `sub` = device, `uid` = user, optional `topics`, `exp`. */
export async function mintDeviceToken({
  secret,
  device,
  user,
  topics,
  expiresIn = '1h',
}: MintDeviceTokenOptions): Promise<string> {
  if (!secret) throw new Error('mintDeviceToken: secret is empty');
  const claims: Record<string, unknown> = { uid: user };
  if (topics !== undefined) claims.topics = topics;
  const exp = typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000) + expiresIn : expiresIn;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(device)
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
}
