import { readFileSync } from 'node:fs';
import { isValidId } from '@herald/protocol';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';

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

export interface TokenVerifierOptions {
  /** HS256 shared secret. */
  secret?: string;
  /** JWKS for asymmetric tokens: a URL (fetched and cached by jose) or a file. */
  jwksUrl?: string;
  jwksFile?: string;
  /** Required `iss`, when set. */
  issuer?: string;
}

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/**
 * Verifies device tokens: HS256 with the shared secret, and/or asymmetric algorithms against a
 * JWKS (so a backend can sign tokens without sharing a secret with the nodes). The token's `alg`
 * picks the key; an algorithm without a configured key is refused, so `none` or an HS256 token
 * signed with a public key can never pass.
 */
export class TokenVerifier {
  private readonly secret: Uint8Array | undefined;
  private readonly jwks: JWTVerifyGetKey | undefined;

  constructor(private readonly opts: TokenVerifierOptions) {
    this.secret = opts.secret ? new TextEncoder().encode(opts.secret) : undefined;
    if (opts.jwksUrl) this.jwks = createRemoteJWKSet(new URL(opts.jwksUrl));
    else if (opts.jwksFile) this.jwks = createLocalJWKSet(JSON.parse(readFileSync(opts.jwksFile, 'utf8')));
    if (!this.secret && !this.jwks) throw new Error('a token secret or a JWKS is required');
  }

  async verify(token: string): Promise<DeviceIdentity> {
    let payload: Record<string, unknown>;
    try {
      const { alg } = decodeProtectedHeader(token);
      const common = {
        requiredClaims: ['sub', 'exp'],
        ...(this.opts.issuer ? { issuer: this.opts.issuer } : {}),
      };
      if (alg === 'HS256' && this.secret) {
        ({ payload } = await jwtVerify(token, this.secret, { ...common, algorithms: ['HS256'] }));
      } else if (alg && ASYMMETRIC.includes(alg) && this.jwks) {
        ({ payload } = await jwtVerify(token, this.jwks, { ...common, algorithms: ASYMMETRIC }));
      } else {
        throw new TokenError(`invalid token: algorithm ${String(alg)} is not accepted`);
      }
    } catch (err) {
      if (err instanceof TokenError) throw err;
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
