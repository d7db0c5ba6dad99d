import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from './errors.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
export const DEFAULT_WS_URL = 'ws://127.0.0.1:8000/v1/ws';

/** What `npm start` writes to `<repo>/.herald/secrets.json` (infra/local/src/secrets.ts). */
export interface LocalSecrets {
  apiKey?: string;
  tokenSecret?: string;
  /** Where they were read from, for messages. */
  file: string;
}

/**
 * `.herald/secrets.json` in the working directory or the nearest parent that has one, so the
 * CLI works with no flags right after `npm start` anywhere in the repo. Unreadable: ignored.
 */
export function findSecrets(from = process.cwd()): LocalSecrets | undefined {
  let dir = path.resolve(from);
  for (;;) {
    const file = path.join(dir, '.herald', 'secrets.json');
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      return {
        file,
        apiKey: typeof parsed.apiKey === 'string' && parsed.apiKey ? parsed.apiKey : undefined,
        tokenSecret:
          typeof parsed.tokenSecret === 'string' && parsed.tokenSecret ? parsed.tokenSecret : undefined,
      };
    } catch {
      // none here (or unreadable): look further up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The options every command shares, with the defaults already applied. */
export interface Common {
  api: string;
  ws: string;
  /** Undefined when none is set anywhere: commands that need one call `requireKey`. */
  key: string | undefined;
  secret: string | undefined;
  secrets: LocalSecrets | undefined;
}

export interface CommonFlags {
  api?: string;
  ws?: string;
  key?: string;
  secret?: string;
}

/** Flag, else environment, else `.herald/secrets.json`, else the local defaults. */
export function resolveCommon(flags: CommonFlags, env: NodeJS.ProcessEnv = process.env): Common {
  const secrets = findSecrets();
  const api = flags.api || env.HERALD_API_URL || DEFAULT_API_URL;
  const ws = flags.ws || env.HERALD_WS_URL || DEFAULT_WS_URL;
  checkUrl('--api', api, ['http:', 'https:']);
  checkUrl('--ws', ws, ['ws:', 'wss:', 'http:', 'https:']);
  return {
    api: api.replace(/\/+$/, ''),
    ws,
    key: flags.key || env.HERALD_API_KEY || secrets?.apiKey,
    secret: flags.secret || env.HERALD_TOKEN_SECRET || secrets?.tokenSecret,
    secrets,
  };
}

function checkUrl(flag: string, value: string, protocols: string[]): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${flag} ${JSON.stringify(value)} is not a URL`);
  }
  if (!protocols.includes(url.protocol))
    throw new UsageError(`${flag} must be a ${protocols.map((p) => p.slice(0, -1)).join(' or ')} URL`);
}

export function requireKey(c: Common): string {
  if (c.key) return c.key;
  throw new UsageError(
    'no API key: pass --key, set HERALD_API_KEY, or run `npm start` once (it writes .herald/secrets.json)',
  );
}

export function requireSecret(c: Common): string {
  if (c.secret) return c.secret;
  throw new UsageError(
    'no token secret: pass --secret, set HERALD_TOKEN_SECRET, or run `npm start` once (it writes .herald/secrets.json)',
  );
}
