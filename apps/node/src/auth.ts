import { isValidId } from '@herald/protocol';
import { errors, jwtVerify } from 'jose';

export interface DeviceIdentity {
  device: string;
  user: string;
  /** Allowed topic patterns; undefined means any topic. */
  topics: string[] | undefined;
  /** Token expiry, ms since epoch. */
  exp: number;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
  }
}

/** Verifies device tokens (JWT, HS256 with the shared secret). */
export class TokenVerifier {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async verify(token: string): Promise<DeviceIdentity> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new TokenError('token expired', true);
      throw new TokenError(`invalid token: ${(err as Error).message}`);
    }
    const { sub, uid, topics, exp } = payload;
    if (typeof sub !== 'string' || !isValidId(sub))
      throw new TokenError('invalid token: sub is not a device id');
    if (typeof uid !== 'string' || !isValidId(uid))
      throw new TokenError('invalid token: uid is not a user id');
    if (topics !== undefined && !(Array.isArray(topics) && topics.every((t) => typeof t === 'string')))
      throw new TokenError('invalid token: topics must be an array of patterns');
    return { device: sub, user: uid, topics: topics as string[] | undefined, exp: (exp as number) * 1000 };
  }
}
