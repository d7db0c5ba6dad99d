import { HeraldClient, type Transport } from '@herald/client';
import { isValidId, isValidTopic } from '@herald/protocol';
import { COMMON_HELP, COMMON_OPTIONS, intFlag, list, parse, secondsFlag } from '../args.js';
import type { Command } from '../command.js';
import { CliError, UsageError } from '../errors.js';
import { exitOnClosedPipe, info, out } from '../io.js';
import { requireSecret, resolveCommon } from '../settings.js';
import { mintToken } from '../token.js';

const HELP = `usage: herald subscribe [--device ID] [--user ID] [-t TOPIC...] [--token JWT | --secret S]
                        [--transport auto|websocket|sse|poll] [--count N] [--timeout SECONDS] [-q]

Connects like a device (with the SDK: resumes, acks, reconnects, drops duplicates) and prints
each notification as one JSON line on stdout: {"stream","seq","id","ts","data"}, with
"priority" when it is high or low. Connection events go to stderr, among them the entries a
newer notification with the same collapse key superseded ("collapsed"). Ctrl-C closes the connection cleanly (pending acks are sent) and exits 0.

Options:
  --device ID        device id (default herald-cli); gets what is sent to this device
  --user ID          user id for the minted token (default: the device id)
  -t, --topic TOPIC  subscribe to a topic; repeat or comma-separate for several
  --token JWT        a device token to use instead of minting one
  --secret S         HS256 secret to mint a token (default $HERALD_TOKEN_SECRET, else
                     .herald/secrets.json)
  --transport T      auto (default): WebSocket, else Server-Sent Events, else long-poll, whichever
                     first gets through (a proxy refusing WebSocket upgrades); or websocket, sse,
                     poll: only that one. SSE and long-poll use the --ws URL's host over http(s)
  --count N          exit 0 after N notifications
  --timeout SECONDS  stop after this long: exit 0, or 1 if --count was not reached
  -q, --quiet        nothing on stderr but errors

${COMMON_HELP}

Examples:
  herald subscribe --device dev-1 -t news.sport
  herald subscribe --device dev-1 --transport sse
  herald subscribe --device dev-1 --count 1 --timeout 30 | jq .data`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  device: { type: 'string' },
  user: { type: 'string' },
  topic: { type: 'string', short: 't', multiple: true },
  token: { type: 'string' },
  secret: { type: 'string' },
  count: { type: 'string' },
  timeout: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  transport: { type: 'string' },
} as const;

const TRANSPORTS = ['auto', 'websocket', 'sse', 'poll'] as const;

/** Longest wait for the socket to close cleanly on exit. */
const CLOSE_MS = 3000;

export const subscribe: Command = {
  name: 'subscribe',
  summary: 'receive notifications like a device, one JSON line each',
  help: HELP,
  async run(args) {
    const { values: v } = parse(args, OPTIONS);
    if (v.help) {
      out(HELP);
      return 0;
    }
    const common = resolveCommon(v);
    const device = v.device ?? 'herald-cli';
    const user = v.user ?? device;
    if (!isValidId(device)) throw new UsageError(`--device ${JSON.stringify(device)} is not a valid id`);
    if (!isValidId(user)) throw new UsageError(`--user ${JSON.stringify(user)} is not a valid id`);
    const topics = list(v.topic);
    for (const t of topics)
      if (!isValidTopic(t)) throw new UsageError(`--topic ${JSON.stringify(t)} is not a valid topic`);
    const count =
      v.count === undefined ? undefined : intFlag('count', v.count, 1, 1, Number.MAX_SAFE_INTEGER);
    const timeoutS = v.timeout === undefined ? undefined : secondsFlag('timeout', v.timeout, 0);
    const quiet = v.quiet === true;
    const transport = (v.transport ?? 'auto') as Transport | 'auto';
    if (!TRANSPORTS.includes(transport))
      throw new UsageError(
        `--transport must be auto, websocket, sse or poll, not ${JSON.stringify(v.transport)}`,
      );
    let tokenSource: string | (() => Promise<string>);
    /** Where the minting secret came from, for a rejected token's message; undefined with --token. */
    let secretFrom: string | undefined;
    if (v.token !== undefined) {
      if (v.token === '') throw new UsageError('--token is empty');
      tokenSource = v.token;
    } else {
      const secret = requireSecret(common);
      secretFrom = v.secret
        ? '--secret'
        : process.env.HERALD_TOKEN_SECRET
          ? '$HERALD_TOKEN_SECRET'
          : '.herald/secrets.json';
      // A function: after an expiry (close 4003) the client asks again and gets a fresh token.
      tokenSource = () => mintToken({ secret, device, user, expires: '24h' });
      await tokenSource(); // bad ids or secret fail here, before connecting
    }

    const client = new HeraldClient({ url: common.ws, token: tokenSource, topics, transport });
    let received = 0;
    let closing = false;
    let settle: (code: number) => void = () => undefined;
    let failure: CliError | undefined;
    const done = new Promise<number>((resolve) => {
      settle = resolve;
    });
    const finish = (code: number, err?: CliError) => {
      if (closing) return;
      closing = true;
      failure = err;
      const timer = setTimeout(() => settle(code), CLOSE_MS);
      void client.close().finally(() => {
        clearTimeout(timer);
        settle(code);
      });
    };

    client.on('notification', (n) => {
      if (closing) return;
      const { stream, seq, id, ts, priority, data } = n;
      out(JSON.stringify(priority ? { stream, seq, id, ts, priority, data } : { stream, seq, id, ts, data }));
      received++;
      if (count !== undefined && received >= count) finish(0);
    });
    client.on('welcome', (w) => {
      const streams = Object.entries(w.streams)
        .map(([name, s]) => `${name}@${s.cursor}`)
        .join(', ');
      // A long-poll welcome is the client's own (no node, device or user in a poll's answer).
      const who = w.node ? ` to ${w.node} as device ${w.device} (user ${w.user})` : '';
      info(quiet, `connected${who} over ${client.transport}; streams ${streams}`);
    });
    client.on('subscribed', (s) => info(quiet, `subscribed to ${s.topic} (after seq ${s.cursor})`));
    client.on('gap', (g) =>
      info(
        quiet,
        g.reason === 'collapsed'
          ? `collapsed in ${g.stream}: seqs ${g.after + 1}..${g.next - 1} (${g.next - g.after - 1}) superseded by a newer notification with the same collapse key`
          : `gap in ${g.stream}: seqs ${g.after + 1}..${g.next - 1} will not come (${g.reason})`,
      ),
    );
    client.on('retry', (r) => {
      if (!closing) info(quiet, `reconnecting in ${r.delayMs} ms`);
    });
    client.on('disconnect', (d) => {
      if (!closing) info(quiet, `disconnected (${d.code}${d.reason ? ` ${d.reason}` : ''})`);
    });
    client.on('error', (e) => {
      if (closing) return;
      if (e.fatal) finish(1, new CliError(`${e.code}: ${e.message}`));
      // A token minted here was refused: the next one, from the same secret, would be too.
      else if (e.code === 'unauthorized' && secretFrom !== undefined)
        finish(1, new CliError(`${e.code}: ${e.message} (the CLI's secret came from ${secretFrom})`));
      else info(false, `warning: ${e.code}: ${e.message}`);
    });

    exitOnClosedPipe(() => finish(0));
    const onSigint = () => {
      if (closing) process.exit(130); // second Ctrl-C: now
      info(quiet, 'closing');
      finish(0);
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint);
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeoutS !== undefined)
      timer = setTimeout(() => {
        if (count !== undefined && received < count)
          finish(1, new CliError(`timed out after ${timeoutS} s with ${received} of ${count} notifications`));
        else finish(0);
      }, timeoutS * 1000);

    void client.connect();
    const code = await done;
    clearTimeout(timer);
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    if (failure) throw failure;
    return code;
  },
};
