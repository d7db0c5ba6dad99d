import { COMMON_HELP, COMMON_OPTIONS, list, parse } from '../args.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { Api } from '../http.js';
import { info, out } from '../io.js';
import { requireKey, resolveCommon } from '../settings.js';

const HELP = `usage: herald keys create --scope SCOPE... [--expires-in SPAN | --expires-at ISO_TIME] [--name NAME] [--json]
       herald keys list [--json]
       herald keys revoke ID

API keys of the app of --key (which needs the admin scope), through /v1/admin/keys.
  create   makes a key and prints it ONCE (Herald keeps only its sha256): store it now.
           Prints the key on stdout, its id and details on stderr (--json: the answer as JSON).
  list     the app's keys: id, source (config: the apps file or HERALD_API_KEYS; redis: made
           here), scopes, expiry, name. Never a key or its hash.
  revoke   stops a key made here (config keys are removed from the apps file instead).

Options:
  -s, --scope SCOPE      publish, status:read, presence:read, admin; repeat or comma-separate
  --expires-in SPAN      lifetime: seconds, or 90s, 30m, 12h, 30d, 8w
  --expires-at ISO_TIME  expiry, e.g. 2030-01-01T00:00:00Z
  --name NAME            a label shown by list
  --json                 print the API's JSON answer

Rotation: create the new key, deploy it, then revoke the old one (or let it expire).

${COMMON_HELP}

Examples:
  herald keys create -s publish --expires-in 90d --name ci > ci.key
  herald keys list
  herald keys revoke k_0123456789ab`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  scope: { type: 'string', short: 's', multiple: true },
  'expires-in': { type: 'string' },
  'expires-at': { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
} as const;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `--expires-in`: whole seconds, or a number with s, m, h, d or w. */
export function spanSeconds(value: string): number {
  const m = /^(\d+)\s*([smhdw]?)$/.exec(value.trim());
  const n = m ? Number(m[1]) * (UNITS[m[2] || 's'] ?? 1) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--expires-in must be seconds or a span like 30d, not ${JSON.stringify(value)}`);
  return n;
}

export const keys: Command = {
  name: 'keys',
  summary: "create, list and revoke the app's API keys",
  help: HELP,
  async run(args) {
    const { values: v, positionals } = parse(args, OPTIONS, 2);
    const [sub, id] = positionals;
    if (v.help) {
      out(HELP);
      return 0;
    }
    if (sub === undefined) throw new UsageError('keys needs a command: create, list or revoke');
    const common = resolveCommon(v);
    const api = () => new Api(common.api, requireKey(common));
    switch (sub) {
      case 'create': {
        const scopes = list(v.scope);
        if (scopes.length === 0)
          throw new UsageError('keys create needs --scope (publish, status:read, presence:read, admin)');
        if (v['expires-in'] !== undefined && v['expires-at'] !== undefined)
          throw new UsageError('give --expires-in or --expires-at, not both');
        const body = {
          scopes,
          ...(v['expires-in'] !== undefined ? { expiresIn: spanSeconds(v['expires-in']) } : {}),
          ...(v['expires-at'] !== undefined ? { expiresAt: v['expires-at'] } : {}),
          ...(v.name !== undefined ? { name: v.name } : {}),
        };
        const created = await api().createKey(body);
        if (v.json) out(JSON.stringify(created));
        else {
          out(created.key);
          info(
            false,
            `created ${created.id} for app ${created.app}: ${created.scopes.join(' ')}, expires ${created.expiresAt ?? 'never'}. The key above is shown this once.`,
          );
        }
        return 0;
      }
      case 'list': {
        const { keys: all } = await api().listKeys();
        if (v.json) out(JSON.stringify(all));
        else
          for (const k of all)
            out(
              [k.id, k.source, k.scopes.join(','), k.expiresAt ?? 'never', k.name ?? ''].join('\t').trimEnd(),
            );
        return 0;
      }
      case 'revoke': {
        if (id === undefined) throw new UsageError('keys revoke needs the key ID (see herald keys list)');
        out(JSON.stringify(await api().revokeKey(id)));
        return 0;
      }
      default:
        throw new UsageError(`unknown keys command ${JSON.stringify(sub)}: create, list or revoke`);
    }
  },
};
