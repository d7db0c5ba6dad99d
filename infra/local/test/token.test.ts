import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { mintDeviceToken } from '../src/index.js';

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
    expect(payload.exp! - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(60);
  });
});
