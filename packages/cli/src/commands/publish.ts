import { COMMON_HELP, COMMON_OPTIONS, list, parse } from '../args.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { Api, type PublishBody } from '../http.js';
import { out, readStdin } from '../io.js';
import { requireKey, resolveCommon } from '../settings.js';

const HELP = `usage: herald publish (-d DEVICE... | -u USER... | -t TOPIC | -b) [--data JSON | --data - | < file]
                      [--ttl SECONDS] [--at ISO_TIME] [--idempotency-key KEY]
                      [--priority high|normal|low] [--collapse-key KEY]

Publishes one notification (POST /v1/notifications) and prints the answer as one JSON line:
{"id":"...","status":"sent"|"queued"|"scheduled"} (sent: the API delivered it itself).

Target (exactly one kind):
  -d, --device ID        a device; repeat or comma-separate for several
  -u, --user ID          every device of a user; repeat or comma-separate for several
  -t, --topic TOPIC      every device subscribed to the topic
  -b, --broadcast        every device
Notification:
  --data JSON            the data, any JSON value. "-" or no --data with piped stdin: read stdin
  --ttl SECONDS          how long it may still be delivered (default: the API's)
  --at ISO_TIME          deliver later, e.g. 2030-01-02T09:00:00Z (cancel with herald cancel ID)
  --idempotency-key KEY  retries with the same key and body publish once
  --priority P           high, normal (default) or low: queue order, sent to the device, Web Push
                         Urgency
  --collapse-key KEY     a newer notification with the same key supersedes this one for devices
                         that have not received it yet (1 to 64 of A-Z a-z 0-9 _ . : ~ -)

${COMMON_HELP}

Examples:
  herald publish -d dev-1 --data '{"title":"Hello"}'
  echo '{"event":"shipped"}' | herald publish -t orders.4711 --idempotency-key order-4711-shipped
  herald publish -u alice --data '"standup"' --at 2030-01-02T09:00:00Z --ttl 3600
  herald publish -d dev-1 --data '{"score":"2-1"}' --collapse-key match-42 --priority high`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  device: { type: 'string', short: 'd', multiple: true },
  user: { type: 'string', short: 'u', multiple: true },
  topic: { type: 'string', short: 't' },
  broadcast: { type: 'boolean', short: 'b' },
  data: { type: 'string' },
  ttl: { type: 'string' },
  at: { type: 'string' },
  'idempotency-key': { type: 'string' },
  priority: { type: 'string' },
  'collapse-key': { type: 'string' },
} as const;

function target(v: {
  device?: string[];
  user?: string[];
  topic?: string;
  broadcast?: boolean;
}): PublishBody['to'] {
  const devices = list(v.device);
  const users = list(v.user);
  const kinds = [devices.length > 0, users.length > 0, v.topic !== undefined, v.broadcast === true].filter(
    Boolean,
  ).length;
  if (kinds === 0) throw new UsageError('no target: give --device, --user, --topic or --broadcast');
  if (kinds > 1)
    throw new UsageError('give only one kind of target: --device, --user, --topic or --broadcast');
  if (devices.length > 0) return { devices };
  if (users.length > 0) return { users };
  if (v.topic !== undefined) return { topic: v.topic };
  return { broadcast: true };
}

async function readData(flag: string | undefined): Promise<unknown> {
  let text: string;
  let from: string;
  if (flag !== undefined && flag !== '-') {
    text = flag;
    from = '--data';
  } else if (flag === '-' || !process.stdin.isTTY) {
    text = await readStdin();
    from = 'stdin';
    if (text.trim() === '') throw new UsageError('no data: stdin was empty (give --data JSON)');
  } else {
    throw new UsageError("no data: give --data '<json>' or pipe JSON on stdin");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${from} is not valid JSON: ${(err as Error).message}`);
  }
}

export function deliverAt(at: string | undefined): string | undefined {
  if (at === undefined) return undefined;
  const ms = Date.parse(at);
  if (Number.isNaN(ms))
    throw new UsageError(`--at ${JSON.stringify(at)} is not a date-time (2030-01-02T09:00:00Z)`);
  return new Date(ms).toISOString();
}

export const publish: Command = {
  name: 'publish',
  summary: 'publish a notification to devices, users, a topic or everyone',
  help: HELP,
  async run(args) {
    const { values: v } = parse(args, OPTIONS);
    if (v.help) {
      out(HELP);
      return 0;
    }
    const common = resolveCommon(v);
    const key = requireKey(common);
    const body: PublishBody = { to: target(v), data: undefined };
    if (v.ttl !== undefined) {
      if (!/^\d+$/.test(v.ttl) || Number(v.ttl) < 1)
        throw new UsageError(`--ttl must be a whole number of seconds, not ${JSON.stringify(v.ttl)}`);
      body.ttl = Number(v.ttl);
    }
    const at = deliverAt(v.at);
    if (at !== undefined) body.deliverAt = at;
    if (v.priority !== undefined) {
      if (v.priority !== 'high' && v.priority !== 'normal' && v.priority !== 'low')
        throw new UsageError(`--priority must be high, normal or low, not ${JSON.stringify(v.priority)}`);
      body.priority = v.priority;
    }
    // Checked by the API (400 naming collapseKey): one rule, in one place.
    if (v['collapse-key'] !== undefined) body.collapseKey = v['collapse-key'];
    const idem = v['idempotency-key'];
    if (idem !== undefined && !/^[\x20-\x7e]{1,200}$/.test(idem))
      throw new UsageError('--idempotency-key must be 1 to 200 printable ASCII characters');
    body.data = await readData(v.data);
    const res = await new Api(common.api, key).publish(body, idem);
    out(JSON.stringify(res));
    return 0;
  },
};
