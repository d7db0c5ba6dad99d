import { envSchema } from 'env-schema';
import type { Static, TObject } from 'typebox';

export class ConfigError extends Error {
  readonly code = 'HERALD_ERR_CONFIG';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Validates the environment against an app's schema once at start; names each bad variable. */
export function loadConfig<S extends TObject>(schema: S, env: NodeJS.ProcessEnv = process.env): Static<S> {
  const data: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const v = env[key];
    if (v !== undefined && v !== '') data[key] = v;
  }
  try {
    return envSchema({ schema, data, env: false, dotenv: false }) as Static<S>;
  } catch (err) {
    const errors = (err as { errors?: AjvError[] }).errors;
    if (!errors) throw err;
    const problems = errors.map((e) => {
      if (e.keyword === 'required') return `${String(e.params.missingProperty)} is required`;
      const name = e.instancePath.replace(/^\//, '');
      return `${name} ${e.message ?? 'is invalid'} (got ${JSON.stringify(data[name])})`;
    });
    throw new ConfigError([...new Set(problems)]);
  }
}

/** Comma-separated list setting, trimmed, empty items dropped. */
export function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
