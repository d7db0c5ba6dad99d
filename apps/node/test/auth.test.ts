import { createHmac } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { TokenError, TokenVerifier } from '../src/auth.js';

const SECRET = 'auth-test-secret-0123456789';
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A compact HS256 JWS over exactly these header and payload bytes. */
function raw(header: unknown, payload: unknown, secret = SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** What the verifier answered before the synchronous HS256 path: jose alone, same options. */
async function joseAnswer(token: string, issuer?: string): Promise<string> {
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      requiredClaims: ['sub', 'exp'],
      ...(issuer ? { issuer } : {}),
    });
    return `ok:${String(payload.sub)}`;
  } catch (err) {
    return (err as Error).constructor.name === 'JWTExpired' ? 'expired' : 'invalid';
  }
}

async function answer(v: TokenVerifier, token: string): Promise<string> {
  try {
    return `ok:${(await v.verify(token)).device}`;
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    return err.expired ? 'expired' : 'invalid';
  }
}

describe('HS256 verification', () => {
  const claims = { sub: 'dev-1', uid: 'user-1' };
  const cases: [string, () => Promise<string> | string][] = [
    [
      'valid',
      () => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key),
    ],
    [
      'valid with typ, iat, nbf in the past',
      () =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
          .setIssuedAt()
          .setNotBefore(now() - 10)
          .setExpirationTime('1h')
          .sign(key),
    ],
    ['expired', () => raw({ alg: 'HS256' }, { ...claims, exp: now() - 1 })],
    ['expiring this second', () => raw({ alg: 'HS256' }, { ...claims, exp: now() })],
    ['nbf in the future', () => raw({ alg: 'HS256' }, { ...claims, exp: now() + 60, nbf: now() + 30 })],
    ['nbf not a number', () => raw({ alg: 'HS256' }, { ...claims, exp: now() + 60, nbf: '1' })],
    ['iat not a number', () => raw({ alg: 'HS256' }, { ...claims, exp: now() + 60, iat: 'x' })],
    ['exp not a number', () => raw({ alg: 'HS256' }, { ...claims, exp: String(now() + 60) })],
    ['no exp', () => raw({ alg: 'HS256' }, claims)],
    ['no sub', () => raw({ alg: 'HS256' }, { uid: 'u', exp: now() + 60 })],
    [
      'wrong secret',
      () => raw({ alg: 'HS256' }, { ...claims, exp: now() + 60 }, 'another-secret-0123456789'),
    ],
    ['alg none', () => `${b64({ alg: 'none' })}.${b64({ ...claims, exp: now() + 60 })}.`],
    ['alg HS384 header', () => raw({ alg: 'HS384' }, { ...claims, exp: now() + 60 })],
    ['crit header', () => raw({ alg: 'HS256', crit: ['exp'] }, { ...claims, exp: now() + 60 })],
    ['b64 false', () => raw({ alg: 'HS256', b64: false, crit: ['b64'] }, { ...claims, exp: now() + 60 })],
    ['payload is an array', () => raw({ alg: 'HS256' }, [1, 2])],
    ['payload is not JSON', () => raw({ alg: 'HS256' }, 'not json')],
    ['header is not JSON', () => raw('nope', { ...claims, exp: now() + 60 })],
    [
      'four parts',
      async () =>
        `${await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key)}.x`,
    ],
    [
      'signature with a stray character',
      async () => {
        const t = await new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256' })
          .setExpirationTime('1h')
          .sign(key);
        return `${t.slice(0, -2)}!${t.slice(-2)}`;
      },
    ],
    ['garbage', () => 'a.b.c'],
  ];

  for (const [name, make] of cases)
    it(`answers as jose does: ${name}`, async () => {
      const token = await make();
      expect(await answer(new TokenVerifier({ secret: SECRET }), token)).toBe(await joseAnswer(token));
      // The synchronous path answers only what jose accepts, and then as jose does.
      const now = new TokenVerifier({ secret: SECRET }).verifyNow(token);
      if (now) expect(`ok:${now.device}`).toBe(await joseAnswer(token));
      else expect(await joseAnswer(token)).not.toMatch(/^ok:/);
    });

  it('checks the issuer as jose does', async () => {
    const v = new TokenVerifier({ secret: SECRET, issuer: 'https://issuer.example' });
    for (const iss of [undefined, 'https://issuer.example', 'https://other.example']) {
      const token = raw({ alg: 'HS256' }, { ...claims, exp: now() + 60, ...(iss ? { iss } : {}) });
      expect(await answer(v, token)).toBe(await joseAnswer(token, 'https://issuer.example'));
    }
  });

  it('keeps the device, user, topics and expiry of a valid token', async () => {
    const exp = now() + 600;
    const token = raw({ alg: 'HS256', typ: 'JWT' }, { ...claims, topics: ['news.*'], exp });
    const v = new TokenVerifier({ secret: SECRET });
    // Answered by the synchronous path, not by jose.
    expect((v as unknown as { hs256(t: string): unknown }).hs256(token)).toMatchObject({ sub: 'dev-1' });
    expect(await v.verify(token)).toEqual({
      app: 'default',
      device: 'dev-1',
      user: 'user-1',
      topics: ['news.*'],
      exp: exp * 1000,
    });
  });
});
