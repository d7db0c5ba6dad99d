#!/usr/bin/env node
// Prints a device token for the local stack:
//   node infra/local/dist/token-cli.js --device dev-1 --user user-1 [--topics 'news.*'] [--expires 1h]
// The secret comes from HERALD_TOKEN_SECRET, else from .herald/secrets.json (written by `npm start`).
import { parseArgs } from 'node:util';
import { readSecrets, secretsFile } from './secrets.js';
import { mintDeviceToken } from './token.js';

const USAGE =
  "usage: node infra/local/dist/token-cli.js --device <id> --user <id> [--topics 'news.*,alerts.*'] [--expires 1h]";

async function main(): Promise<number> {
  let values: { device?: string; user?: string; topics?: string[]; expires?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        device: { type: 'string' },
        user: { type: 'string' },
        topics: { type: 'string', multiple: true },
        expires: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 1;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.device || !values.user) {
    console.error(USAGE);
    return 1;
  }
  const secret = process.env.HERALD_TOKEN_SECRET || readSecrets()?.tokenSecret;
  if (!secret) {
    console.error(
      `no token secret: set HERALD_TOKEN_SECRET or run \`npm start\` once (it writes ${secretsFile()})`,
    );
    return 1;
  }
  const topics = values.topics
    ?.flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter(Boolean);
  const token = await mintDeviceToken({
    secret,
    device: values.device,
    user: values.user,
    topics: topics && topics.length > 0 ? topics : undefined,
    expiresIn: values.expires ?? '1h',
  });
  console.log(token);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
