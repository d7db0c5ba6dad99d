import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { heraldHome } from './paths.js';

/** What `npm start` keeps in `<repo>/.herald/secrets.json` so restarts keep working tokens and keys. */
export interface LocalSecrets {
  apiKey: string;
  tokenSecret: string;
}

export function secretsFile(): string {
  return path.join(heraldHome(), 'secrets.json');
}

/** Reads `.herald/secrets.json`; undefined when it does not exist or is incomplete. */
export function readSecrets(file = secretsFile()): LocalSecrets | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LocalSecrets>;
    if (
      typeof parsed.apiKey === 'string' &&
      parsed.apiKey &&
      typeof parsed.tokenSecret === 'string' &&
      parsed.tokenSecret
    ) {
      return { apiKey: parsed.apiKey, tokenSecret: parsed.tokenSecret };
    }
  } catch {
    // missing or unreadable: generate
  }
  return undefined;
}

/** Reuses `.herald/secrets.json` or generates a demo API key and a token secret (file mode 0600). */
export function loadOrCreateSecrets(file = secretsFile()): LocalSecrets {
  const existing = readSecrets(file);
  if (existing) return existing;
  const secrets: LocalSecrets = {
    apiKey: `demo_${randomBytes(18).toString('base64url')}`,
    tokenSecret: randomBytes(32).toString('base64url'),
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}
