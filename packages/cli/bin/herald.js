#!/usr/bin/env node
// The `herald` command. A committed file rather than dist/main.js itself, so that `npm ci` on a
// fresh clone (before anything is built) still links it into node_modules/.bin.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('herald: the CLI is not built yet: run `npm run build` at the repository root\n');
  process.exit(1);
}
await import(main.href);
