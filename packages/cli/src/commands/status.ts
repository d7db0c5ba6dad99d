import { COMMON_HELP, COMMON_OPTIONS, parse } from '../args.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { Api } from '../http.js';
import { out } from '../io.js';
import { requireKey, resolveCommon } from '../settings.js';

const ID = /^[A-Za-z0-9_-]{1,64}$/;

function idArg(positionals: string[], usage: string): string {
  const id = positionals[0];
  if (id === undefined) throw new UsageError(`missing notification ID (${usage})`);
  if (!ID.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a notification id`);
  return id;
}

const STATUS_HELP = `usage: herald status ID

Prints a notification's state and delivery counts (GET /v1/notifications/ID) as JSON:
state (scheduled, queued, sending, sent, cancelled, expired) and counts of targets,
delivered, acked and expired.

${COMMON_HELP}`;

export const status: Command = {
  name: 'status',
  summary: "show a notification's state and delivery counts",
  help: STATUS_HELP,
  async run(args) {
    const { values: v, positionals } = parse(args, COMMON_OPTIONS, 1);
    if (v.help) {
      out(STATUS_HELP);
      return 0;
    }
    const id = idArg(positionals, 'herald status ID');
    const common = resolveCommon(v);
    const res = await new Api(common.api, requireKey(common)).status(id);
    out(JSON.stringify(res, null, 2));
    return 0;
  },
};

const CANCEL_HELP = `usage: herald cancel ID

Cancels a scheduled notification (DELETE /v1/notifications/ID) and prints
{"id":"...","state":"cancelled"}. Cancelling twice is fine; a notification that is
already being sent or was sent cannot be cancelled (HERALD_ALREADY_SENT, exit 1).

${COMMON_HELP}`;

export const cancel: Command = {
  name: 'cancel',
  summary: 'cancel a scheduled notification',
  help: CANCEL_HELP,
  async run(args) {
    const { values: v, positionals } = parse(args, COMMON_OPTIONS, 1);
    if (v.help) {
      out(CANCEL_HELP);
      return 0;
    }
    const id = idArg(positionals, 'herald cancel ID');
    const common = resolveCommon(v);
    const res = await new Api(common.api, requireKey(common)).cancel(id);
    out(JSON.stringify(res));
    return 0;
  },
};
