import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  checkDeviceTokenOptions,
  type MintDeviceTokenOptions,
  mintDeviceToken,
  TokenError,
  TokenOptionError,
  TokenVerifier,
  verifyAppToken,
  verifyAppTokenNow,
} from '../src/index.js';

describe('mintDeviceToken', () => {
  it('signs HS256 with sub, uid, topics and exp', async () => {
    const secret = 'test-secret';
    const token = await mintDeviceToken({ secret, device: 'dev-1', user: 'user-1', topics: ['news.*'] });
    expect(decodeProtectedHeader(token).alg).toBe('HS256');
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret));
    expect(payload.sub).toBe('dev-1');
    expect(payload.uid).toBe('user-1');
    expect(payload.topics).toEqual(['news.*']);
    const now = Math.floor(Date.now() / 1000);
    expect(payload.exp).toBeGreaterThan(now + 3500);
    expect(payload.exp).toBeLessThanOrEqual(now + 3601);
  });

  it('omits topics when not given and honours expiresIn', async () => {
    const token = await mintDeviceToken({ secret: 's', device: 'd', user: 'u', expiresIn: 60 });
    const { payload } = await jwtVerify(token, new TextEncoder().encode('s'));
    expect(payload).not.toHaveProperty('topics');
    expect(payload).not.toHaveProperty('aud');
    expect(payload.exp! - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(60);
  });

  it("names the device's app in aud", async () => {
    const token = await mintDeviceToken({ secret: 's', device: 'd', user: 'u', app: 'shop' });
    const { payload } = await jwtVerify(token, new TextEncoder().encode('s'), { audience: 'shop' });
    expect(payload.aud).toBe('shop');
  });
});

describe('checkDeviceTokenOptions', () => {
  it('refuses what the nodes would, naming the option', async () => {
    const base = { secret: 's', device: 'd', user: 'u' };
    const cases: [Partial<MintDeviceTokenOptions>, string, RegExp][] = [
      [{ device: 'bad id' }, 'device', /"bad id" is not a valid id/],
      [{ user: '' }, 'user', /"" is not a valid id/],
      [{ topics: ['news.>.x'] }, 'topics', /is not a topic pattern/],
      [{ expiresIn: 'forever' }, 'expiresIn', /is not a duration/],
      [{ app: 'Shop' }, 'app', /"Shop" is not an app id/],
      [{ expiresIn: -5 }, 'expiresIn', /is not a duration/],
      [{ secret: '' }, 'secret', /secret is empty/],
    ];
    for (const [override, option, message] of cases) {
      const err = await mintDeviceToken({ ...base, ...override }).catch((e: unknown) => e);
      expect(err, option).toBeInstanceOf(TokenOptionError);
      expect((err as TokenOptionError).option).toBe(option);
      expect((err as Error).message).toMatch(message);
    }
    for (const ok of ['news', 'news.*', 'news.>', 'a.*.c', '>'])
      expect(() => checkDeviceTokenOptions({ device: 'd', user: 'u', topics: [ok] }), ok).not.toThrow();
  });

  it('keeps an explicit empty topics list as a claim (no topic allowed)', async () => {
    const { payload } = await jwtVerify(
      await mintDeviceToken({ secret: 's', device: 'd', user: 'u', topics: [], expiresIn: '90s' }),
      new TextEncoder().encode('s'),
    );
    expect(payload.topics).toEqual([]);
    expect(payload.exp! - payload.iat!).toBe(90);
  });
});

describe('verifyAppToken', () => {
  const secrets = { default: 'default-secret-0123456789', shop: 'shop-secret-0123456789' };
  const apps = new Map<string, { verifier: TokenVerifier | undefined }>([
    ['default', { verifier: new TokenVerifier({ secret: secrets.default }) }],
    ['shop', { verifier: new TokenVerifier({ secret: secrets.shop }) }],
    ['bare', { verifier: undefined }],
  ]);
  const verify = (t: string, only?: string) => verifyAppToken(t, (id) => apps.get(id), only);
  const mint = (secret: string, app?: string) =>
    mintDeviceToken({ secret, device: 'dev-1', user: 'u-1', ...(app ? { app } : {}) });

  it('verifies with the keys of the app aud names (none: default), and only those', async () => {
    expect((await verify(await mint(secrets.shop, 'shop'))).app).toBe('shop');
    expect((await verify(await mint(secrets.default))).app).toBe('default');
    // shop's aud signed with default's secret: refused, whatever other app it would verify with.
    await expect(verify(await mint(secrets.default, 'shop'))).rejects.toBeInstanceOf(TokenError);
    await expect(verify(await mint(secrets.shop, 'blog'))).rejects.toThrow(/unknown app "blog"/);
    await expect(verify(await mint(secrets.shop, 'bare'))).rejects.toThrow(/has no token keys/);
    // The one app of a single-app node: another aud is refused after verification.
    await expect(verify(await mint(secrets.default, 'shop'), 'default')).rejects.toThrow(
      /unknown app "shop"/,
    );
  });

  it('answers the same without a promise (verifyAppTokenNow), or leaves the token to verifyAppToken', async () => {
    const now = (t: string, only?: string) => verifyAppTokenNow(t, (id) => apps.get(id), only);
    expect(now(await mint(secrets.shop, 'shop'))?.app).toBe('shop');
    expect(now(await mint(secrets.default))?.app).toBe('default');
    // Signed with another app's secret: no synchronous answer; verifyAppToken refuses it (above).
    expect(now(await mint(secrets.default, 'shop'))).toBeUndefined();
    const blog = await mint(secrets.shop, 'blog');
    const bare = await mint(secrets.shop, 'bare');
    const shopAsDefault = await mint(secrets.default, 'shop');
    expect(() => now(blog)).toThrow(/unknown app "blog"/);
    expect(() => now(bare)).toThrow(/has no token keys/);
    expect(() => now(shopAsDefault, 'default')).toThrow(/unknown app "shop"/);
  });
});
