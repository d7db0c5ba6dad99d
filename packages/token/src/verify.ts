import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
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

/** The app of a token without `aud` (docs/tenancy.md). */
export const DEFAULT_APP = 'default';

export interface DeviceIdentity {
  /** The app the token names in `aud` (`default` without one). */
  app: string;
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

/** base64url without padding, and not a length that no encoding has (4n + 1). */
const B64URL = /^[A-Za-z0-9_-]*$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function isB64url(s: string): boolean {
  return s.length % 4 !== 1 && B64URL.test(s);
}

/** A plain JSON object, as jose's `isObject` (JSON.parse only makes Object-prototype objects and arrays). */
function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
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
  private readonly hmacKey: KeyObject | undefined;
  private readonly jwks: JWTVerifyGetKey | undefined;

  constructor(private readonly opts: TokenVerifierOptions) {
    this.secret = opts.secret ? new TextEncoder().encode(opts.secret) : undefined;
    this.hmacKey = this.secret ? createSecretKey(this.secret) : undefined;
    if (opts.jwksUrl) this.jwks = createRemoteJWKSet(new URL(opts.jwksUrl));
    else if (opts.jwksFile) this.jwks = createLocalJWKSet(JSON.parse(readFileSync(opts.jwksFile, 'utf8')));
    if (!this.secret && !this.jwks) throw new Error('a token secret or a JWKS is required');
  }

  async verify(token: string): Promise<DeviceIdentity> {
    return this.verifyNow(token) ?? this.identity(await this.jose(token));
  }

  /**
   * `verify`'s answer without a promise when the synchronous HS256 path can give it (issue #14:
   * four async layers and their microtasks per hello, BENCHMARKS.md), else undefined: another
   * algorithm, or any token that path does not accept, which only `verify` (jose) judges.
   * Throws the same TokenError as `verify` for a signed token whose claims are no identity.
   */
  verifyNow(token: string): DeviceIdentity | undefined {
    const payload = this.hs256(token);
    return payload ? this.identity(payload) : undefined;
  }

  /**
   * HS256 with Node's synchronous HMAC (about 5 µs), instead of jose's WebCrypto path (a key
   * import and an async crypto job per token, about 0.1 ms at hello time). Answers only when it
   * can prove jose would accept the token with the same options: the same header, signature and
   * claim checks (alg, crit/b64 absent, signature, JSON object payload, required sub and exp,
   * iss, iat/nbf/exp types, nbf and exp against the clock in whole seconds). Anything else,
   * including every token that fails, goes to jose, which gives the authoritative error.
   */
  private hs256(token: string): Record<string, unknown> | undefined {
    if (!this.hmacKey) return undefined;
    const dot1 = token.indexOf('.');
    const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
    if (dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0) return undefined;
    const h = token.slice(0, dot1);
    const p = token.slice(dot1 + 1, dot2);
    const sig = token.slice(dot2 + 1);
    if (!isB64url(h) || !isB64url(p) || !isB64url(sig)) return undefined;
    let header: unknown;
    let claims: unknown;
    try {
      header = JSON.parse(strictUtf8.decode(Buffer.from(h, 'base64url')));
      if (!isJsonObject(header) || header.alg !== 'HS256' || 'crit' in header || 'b64' in header)
        return undefined;
      const expected = Buffer.from(
        createHmac('sha256', this.hmacKey).update(token.slice(0, dot2)).digest('base64url'),
      );
      const given = Buffer.from(sig);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      claims = JSON.parse(strictUtf8.decode(Buffer.from(p, 'base64url')));
    } catch {
      return undefined;
    }
    if (!isJsonObject(claims)) return undefined;
    const { exp, nbf, iat } = claims;
    if (!Object.hasOwn(claims, 'sub') || typeof exp !== 'number') return undefined;
    if (this.opts.issuer !== undefined && (!Object.hasOwn(claims, 'iss') || claims.iss !== this.opts.issuer))
      return undefined;
    if (iat !== undefined && typeof iat !== 'number') return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now)) return undefined;
    if (exp <= now) return undefined;
    return claims;
  }

  private async jose(token: string): Promise<Record<string, unknown>> {
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
    return payload;
  }

  private identity(payload: Record<string, unknown>): DeviceIdentity {
    const { sub, uid, topics, exp, aud } = payload;
    if (aud !== undefined && typeof aud !== 'string')
      throw new TokenError('invalid token: aud must be one app id (a string)');
    if (typeof sub !== 'string' || !isValidId(sub))
      throw new TokenError('invalid token: sub is not a device id');
    if (typeof uid !== 'string' || !isValidId(uid))
      throw new TokenError('invalid token: uid is not a user id');
    if (topics !== undefined && !(Array.isArray(topics) && topics.every((t) => typeof t === 'string')))
      throw new TokenError('invalid token: topics must be an array of patterns');
    return {
      app: aud ?? DEFAULT_APP,
      device: sub,
      user: uid,
      topics: topics as string[] | undefined,
      exp: (exp as number) * 1000,
    };
  }
}

/**
 * The app a token names, read from its payload before any verification: only to choose whose
 * keys verify it (the verified payload is the same bytes, so the verified `aud` is this one).
 * `default` without `aud`; undefined when the payload cannot be read or `aud` is not a string
 * (the token is then refused as invalid).
 */
export function tokenApp(token: string): string | undefined {
  const dot1 = token.indexOf('.');
  const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
  if (dot2 < 0) return undefined;
  const p = token.slice(dot1 + 1, dot2);
  if (!isB64url(p)) return undefined;
  try {
    const claims: unknown = JSON.parse(strictUtf8.decode(Buffer.from(p, 'base64url')));
    if (!isJsonObject(claims)) return undefined;
    const aud = claims.aud;
    if (aud === undefined) return DEFAULT_APP;
    return typeof aud === 'string' ? aud : undefined;
  } catch {
    return undefined;
  }
}

/** What `verifyAppToken` needs of an app: its verifier, undefined when the app has no token keys. */
export interface AppTokenKeys {
  readonly verifier: TokenVerifier | undefined;
}

/**
 * Verifies a device token with the keys of the app its `aud` names (no `aud`: `default`): the
 * unverified payload is read only to choose the app, and the verified `aud` must be that app.
 * An unknown app, or one without token keys, is refused as an invalid token. `only`: the one app
 * of a single-app deployment, whose tokens go straight to its verifier (no extra parse at hello).
 * The nodes (hello, SSE, long-poll) and the API (the device routes of docs/webpush.md) both
 * verify through this, so a token is accepted or refused alike by both.
 */
export async function verifyAppToken(
  token: string,
  appOf: (id: string) => AppTokenKeys | undefined,
  only?: string,
): Promise<DeviceIdentity> {
  const [id, verifier] = appVerifier(token, appOf, only);
  return sameApp(await verifier.verify(token), id);
}

/**
 * `verifyAppToken` without a promise when the token's verifier answers synchronously (HS256,
 * `TokenVerifier.verifyNow`), else undefined (then call `verifyAppToken`). Throws the same
 * TokenError as `verifyAppToken` where that one would reject.
 */
export function verifyAppTokenNow(
  token: string,
  appOf: (id: string) => AppTokenKeys | undefined,
  only?: string,
): DeviceIdentity | undefined {
  const [id, verifier] = appVerifier(token, appOf, only);
  const identity = verifier.verifyNow(token);
  return identity && sameApp(identity, id);
}

/** The app a token names and its verifier; TokenError when there is none. */
function appVerifier(
  token: string,
  appOf: (id: string) => AppTokenKeys | undefined,
  only: string | undefined,
): [string, TokenVerifier] {
  const id = only ?? tokenApp(token);
  if (id === undefined) throw new TokenError('invalid token: aud must be one app id (a string)');
  const app = appOf(id);
  if (!app) throw new TokenError(`invalid token: unknown app ${JSON.stringify(id.slice(0, 64))}`);
  if (!app.verifier) throw new TokenError(`invalid token: app ${id} has no token keys`);
  return [id, app.verifier];
}

function sameApp(identity: DeviceIdentity, id: string): DeviceIdentity {
  if (identity.app !== id)
    throw new TokenError(`invalid token: unknown app ${JSON.stringify(identity.app.slice(0, 64))}`);
  return identity;
}

/** A verifier for token settings that have keys, else undefined (the app accepts no device token). */
export function verifierFor(tokens: TokenVerifierOptions | undefined): TokenVerifier | undefined {
  return tokens && (tokens.secret || tokens.jwksUrl || tokens.jwksFile)
    ? new TokenVerifier(tokens)
    : undefined;
}
