import { list, parse } from '../args.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { out } from '../io.js';
import { requireSecret, resolveCommon } from '../settings.js';
import { mintToken } from '../token.js';

const HELP = `usage: herald token --device ID [--user ID] [--topics PATTERN...] [--expires SPAN] [--app ID] [--secret S]

Mints a device token (JWT, HS256) and prints it: sub = device, uid = user, exp, and the
topics the device may subscribe to. Send it as {"type":"hello","token":"..."}, or use
herald subscribe, which mints its own.

Options:
  --device ID           the device (sub claim); required
  --user ID             its user (uid claim); default: the device id
  --topics PATTERN      allowed topics: news, news.* (one more segment), news.> (any);
                        repeat or comma-separate; default: any topic
  --expires SPAN        lifetime: 90s, 30m, 1h, 7d, or seconds (default 1h)
  --app ID              the device's app (aud claim; docs/tenancy.md); sign with that app's
                        secret. Default: none, which nodes read as the app \`default\`
  --secret S            HS256 secret (default $HERALD_TOKEN_SECRET, else .herald/secrets.json)
  -h, --help            this help

Example:
  TOKEN=$(herald token --device dev-1 --user alice --topics 'news.*' --expires 2h)`;

const OPTIONS = {
  device: { type: 'string' },
  user: { type: 'string' },
  topics: { type: 'string', multiple: true },
  expires: { type: 'string' },
  app: { type: 'string' },
  secret: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const token: Command = {
  name: 'token',
  summary: 'mint a device token (JWT) for the push nodes',
  help: HELP,
  async run(args) {
    const { values: v } = parse(args, OPTIONS);
    if (v.help) {
      out(HELP);
      return 0;
    }
    if (!v.device) throw new UsageError('missing --device');
    const secret = requireSecret(resolveCommon({ secret: v.secret }));
    const topics = v.topics === undefined ? undefined : list(v.topics);
    out(
      await mintToken({
        secret,
        device: v.device,
        user: v.user ?? v.device,
        ...(topics ? { topics } : {}),
        expires: v.expires ?? '1h',
        ...(v.app !== undefined ? { app: v.app } : {}),
      }),
    );
    return 0;
  },
};
