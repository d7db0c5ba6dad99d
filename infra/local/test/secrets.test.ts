import { createECDH } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateSecrets } from '../src/secrets.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('.herald/secrets.json', () => {
  it('is created with an API key, a token secret and a VAPID pair web-push accepts, mode 0600, and reused', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-secrets-'));
    const file = path.join(dir, 'secrets.json');
    const s = loadOrCreateSecrets(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(s.vapidPublicKey, 'base64url')).toHaveLength(65);
    expect(Buffer.from(s.vapidPrivateKey, 'base64url')).toHaveLength(32);
    // The pair matches: the private key's public point is the public key.
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(s.vapidPrivateKey, 'base64url'));
    expect(ecdh.getPublicKey().toString('base64url')).toBe(s.vapidPublicKey);
    expect(loadOrCreateSecrets(file)).toEqual(s);
  });

  it('adds a VAPID pair to a file from before Web Push, keeping its key and secret', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-secrets-'));
    const file = path.join(dir, 'secrets.json');
    writeFileSync(file, JSON.stringify({ apiKey: 'demo_old-key-0123456789', tokenSecret: 'old-secret' }), {
      mode: 0o600,
    });
    const s = loadOrCreateSecrets(file);
    expect(s).toMatchObject({ apiKey: 'demo_old-key-0123456789', tokenSecret: 'old-secret' });
    expect(s.vapidPublicKey).toMatch(/^[A-Za-z0-9_-]{87}$/);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(s);
  });
});
