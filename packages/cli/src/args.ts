import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** --api, --ws, --key, --help: accepted by every command. */
export const COMMON_OPTIONS = {
  api: { type: 'string' },
  ws: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export const COMMON_HELP = `Common options:
  --api URL     API base URL (default $HERALD_API_URL, else http://127.0.0.1:8080)
  --ws URL      WebSocket URL (default $HERALD_WS_URL, else ws://127.0.0.1:8000/v1/ws)
  --key KEY     API key (default $HERALD_API_KEY, else .herald/secrets.json from \`npm start\`)
  -h, --help    this help`;

/** node:util parseArgs with its errors turned into usage errors (exit 2). */
export function parse<O extends Options>(args: string[], options: O, positionals = 0) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
  >;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  if (parsed.positionals.length > positionals && !(parsed.values as { help?: boolean }).help)
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[positionals])}`);
  return parsed;
}

/** A whole number within [min, max], from a flag's text. */
export function intFlag(
  name: string,
  value: string | undefined,
  def: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(
      `--${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`,
    );
  return n;
}

/** A duration in seconds (decimals allowed), from a flag's text. */
export function secondsFlag(name: string, value: string | undefined, def: number): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive number of seconds, not ${JSON.stringify(value)}`);
  return n;
}

/** Repeatable flags that may also hold comma-separated lists: `-d a -d b,c` is a, b, c. */
export function list(values: string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}
