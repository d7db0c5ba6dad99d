import { type Cursors, HttpError, INBOX, parseStream, topicAllowed } from '@herald/protocol';
import type { Keys, RedisClient } from '@herald/store';
import type { DeviceIdentity } from './auth.js';
import type { SessionDeps } from './ports.js';

/** Most replay-batch reads one stream's HTTP ack makes to count acked entries (counts are statistics). */
const MAX_ACK_READS = 10;

/**
 * Moves a stored cursor forward and returns where it stood (-1: none), in one step, so two acks
 * racing on two nodes count disjoint ranges. The hash lives the device retention from here, as
 * after a WebSocket ack (store's cursor.lua).
 */
const ACK_CURSOR_LUA = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
old = old and tonumber(old) or -1
local seq = tonumber(ARGV[2])
if seq > old then
  redis.call('HSET', KEYS[1], ARGV[1], seq)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return old`;

type AckRedis = RedisClient & {
  heraldNodeAckCursor(key: string, stream: string, seq: number, ttlMs: number): Promise<number>;
};

export type AckResult = { ok: true } | { ok: false; status: number; code: string; message: string };

/**
 * `POST /v1/acks` (docs/protocol.md, "Acks over HTTP"): cumulative cursors from an SSE or
 * long-poll device, written straight to Redis by whichever node the balancer picked. Each
 * stream's entries between the stored cursor and the ack are counted as acked, as a WebSocket
 * ack from the stored cursor counts them.
 */
/** The apps of the node, as acks need them (apps.ts). */
export interface AckScopes {
  get(app: string): { keys: Keys; deps: SessionDeps } | undefined;
}

export class HttpAcks {
  private readonly redis: AckRedis;

  constructor(
    redis: RedisClient,
    private readonly scopes: AckScopes,
    private readonly retentionMs: number,
  ) {
    redis.defineCommand('heraldNodeAckCursor', { numberOfKeys: 1, lua: ACK_CURSOR_LUA });
    this.redis = redis as AckRedis;
  }

  /** Acks of the device in the app its token names (the route verified it). */
  async ack(id: DeviceIdentity, cursors: Cursors): Promise<AckResult> {
    const scope = this.scopes.get(id.app);
    if (!scope)
      return { ok: false, status: 401, code: HttpError.Unauthorized.code, message: `unknown app ${id.app}` };
    const { deps } = scope;
    const names = Object.keys(cursors);
    for (const name of names) {
      const s = parseStream(name);
      if (s?.kind === 'topic' && !topicAllowed(id.topics, s.topic))
        return {
          ok: false,
          status: 403,
          code: HttpError.TopicForbidden.code,
          message: `token does not allow topic ${s.topic}`,
        };
    }
    const keys = names.map((n) => deps.streams.keysOf(n, id.device));
    const heads = await deps.streams.heads(keys);
    for (let i = 0; i < names.length; i++) {
      const seq = cursors[names[i]!]!;
      if (seq > heads[i]!)
        return {
          ok: false,
          status: 400,
          code: HttpError.BadRequest.code,
          message: `cursors.${names[i]}: ack ${seq} is past the stream's last entry ${heads[i]}`,
        };
    }
    const cursorKey = scope.keys.cursors(id.device);
    await Promise.all(
      names.map(async (name, i) => {
        const seq = cursors[name]!;
        const old = await this.redis.heraldNodeAckCursor(cursorKey, name, seq, this.retentionMs);
        // Without a stored cursor, an inbox is read from its start; another stream from where
        // the device started reading it, which only its session knew: nothing is counted.
        const from = old >= 0 ? old : name === INBOX ? 0 : seq;
        if (seq > from) await this.count(deps, id.device, name, keys[i]!, from, seq);
      }),
    );
    return { ok: true };
  }

  private async count(
    deps: SessionDeps,
    device: string,
    stream: string,
    keys: ReturnType<SessionDeps['streams']['keysOf']>,
    from: number,
    to: number,
  ): Promise<void> {
    const batch = deps.limits.replayBatch;
    let after = from;
    try {
      for (let r = 0; r < MAX_ACK_READS && after < to; r++) {
        const { entries } = await deps.streams.read(keys, after, Math.min(to - after, batch));
        if (entries.length === 0) return;
        const now = Date.now();
        for (const e of entries) {
          if (e.seq > to) return;
          after = e.seq;
          // Announced in a gap (collapsed, expired), never delivered: not acked either.
          if (e.collapsed || e.exp <= now) continue;
          deps.stats.acks++;
          deps.receipts.acked(e.id, { device, stream, seq: e.seq });
        }
      }
    } catch (err) {
      // Counts are statistics: a failed read leaves them short, the cursor has moved.
      deps.log.warn({ stream, err: (err as Error).message }, 'ack read failed');
    }
  }
}
