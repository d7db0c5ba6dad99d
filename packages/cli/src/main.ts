#!/usr/bin/env node
// herald: the command line of a Herald deployment. `herald --help` lists the commands.
import { readFileSync } from 'node:fs';
import type { Command } from './command.js';
import { bench } from './commands/bench.js';
import { keys } from './commands/keys.js';
import { publish } from './commands/publish.js';
import { cancel, status } from './commands/status.js';
import { subscribe } from './commands/subscribe.js';
import { token } from './commands/token.js';
import { CliError, EXIT_FAILED, EXIT_USAGE, UsageError } from './errors.js';

const COMMANDS: Command[] = [publish, subscribe, token, status, cancel, keys, bench];

const HELP = `usage: herald <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

Run herald <command> --help for its options. Defaults come from HERALD_API_URL, HERALD_WS_URL,
HERALD_API_KEY and HERALD_TOKEN_SECRET, else from .herald/secrets.json (written by \`npm start\`)
and the local ports: API http://127.0.0.1:8080, WebSocket ws://127.0.0.1:8000/v1/ws.

herald --version (-V) prints the CLI's version.

Exit codes: 0 done, 1 the operation failed (API error, unreachable, timeout), 2 bad usage.`;

/** The CLI's version: its package.json's, read once at startup (dist/ sits beside it). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return String(pkg.version);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === '-V' || name === '--version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const about = name === 'help' ? COMMANDS.find((c) => c.name === args[0]) : undefined;
    process.stdout.write(`${about ? about.help : HELP}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) err.message = `${name}: ${err.message} (see herald ${name} --help)`;
    throw err;
  }
}

/** Exits once stdout has taken everything written (pipes are asynchronous on some systems). */
function exit(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main(process.argv.slice(2)).then(exit, (err: unknown) => {
  if (err instanceof UsageError) {
    const hint = err.message.endsWith('--help)') ? '' : ' (see herald --help)';
    process.stderr.write(`herald: ${err.message}${hint}\n`);
    exit(EXIT_USAGE);
    return;
  }
  if (err instanceof CliError) process.stderr.write(`herald: ${err.message}\n`);
  else process.stderr.write(`herald: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  exit(EXIT_FAILED);
});
