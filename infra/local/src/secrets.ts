import { createECDH, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { heraldHome } from './paths.js';

/** What `npm start` keeps in `<repo>/.herald/secrets.json` so restarts keep working tokens and keys. */
export interface LocalSecrets {
  apiKey: string;
  tokenSecret: string;
  /** VAPID key pair (RFC 8292, base64url) for Web Push (docs/webpush.md). */
  vapidPublicKey: string;
  vapidPrivateKey: string;
}

export function secretsFile(): string {
  return path.join(heraldHome(), 'secrets.json');
}

const str = (v: unknown): v is string => typeof v === 'string' && v !== '';

/** Reads `.herald/secrets.json`; undefined when it does not exist or lacks the API key or token secret. */
export function readSecrets(file = secretsFile()): Partial<LocalSecrets> | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LocalSecrets>;
    if (str(parsed.apiKey) && str(parsed.tokenSecret)) {
      const out: Partial<LocalSecrets> = { apiKey: parsed.apiKey, tokenSecret: parsed.tokenSecret };
      if (str(parsed.vapidPublicKey) && str(parsed.vapidPrivateKey)) {
        out.vapidPublicKey = parsed.vapidPublicKey;
        out.vapidPrivateKey = parsed.vapidPrivateKey;
      }
      return out;
    }
  } catch {
    // missing or unreadable: generate
  }
  return undefined;
}

/** A P-256 key pair as web-push takes it: the uncompressed public point and the 32-byte private scalar, base64url. */
export function generateVapidKeys(): { vapidPublicKey: string; vapidPrivateKey: string } {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    vapidPublicKey: ecdh.getPublicKey().toString('base64url'),
    vapidPrivateKey: Buffer.from(ecdh.getPrivateKey('hex').padStart(64, '0'), 'hex').toString('base64url'),
  };
}

/**
 * Reuses `.herald/secrets.json` or generates a demo API key, a token secret and a VAPID key pair
 * (file mode 0600). A file from before Web Push keeps its key and secret and gains the pair.
 */
export function loadOrCreateSecrets(file = secretsFile()): LocalSecrets {
  const existing = readSecrets(file);
  if (existing?.apiKey && existing.tokenSecret && existing.vapidPublicKey && existing.vapidPrivateKey)
    return existing as LocalSecrets;
  const secrets: LocalSecrets = {
    apiKey: existing?.apiKey ?? `demo_${randomBytes(18).toString('base64url')}`,
    tokenSecret: existing?.tokenSecret ?? randomBytes(32).toString('base64url'),
    ...generateVapidKeys(),
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}
