import type { GapFrame, ServerFrame } from './frames.js';
import { isValidTopic, parseStream } from './streams.js';

/**
 * What `parseServerFrame` found: a valid frame; or a frame of a type this version does not know
 * (`unknownType`: a newer server, which a client should ignore rather than treat as an error);
 * or a broken frame with the reason.
 */
export type ServerParseResult =
  | { ok: true; frame: ServerFrame }
  | { ok: false; unknownType: true; type: string; reason: string }
  | { ok: false; unknownType: false; reason: string };

const fail = (reason: string): ServerParseResult => ({ ok: false, unknownType: false, reason });
const ok = (frame: ServerFrame): ServerParseResult => ({ ok: true, frame });

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStream = (v: unknown): v is string => typeof v === 'string' && parseStream(v) !== undefined;
const isTopic = (v: unknown): v is string => typeof v === 'string' && isValidTopic(v);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function parseWelcomeStreams(v: unknown): Record<string, { cursor: number }> | string {
  if (!isObject(v)) return 'welcome.streams must be an object';
  const out: Record<string, { cursor: number }> = {};
  for (const [name, s] of Object.entries(v)) {
    if (parseStream(name) === undefined)
      return `welcome.streams has an unknown stream ${JSON.stringify(name.slice(0, 64))}`;
    if (!isObject(s) || !isSeq(s.cursor))
      return `welcome.streams.${name}.cursor must be a non-negative integer`;
    out[name] = { cursor: s.cursor };
  }
  return out;
}

/**
 * Validates one server text frame (docs/protocol.md, "Server frames"): the counterpart of
 * `parseClientFrame`, used by the SDK. Returns a fresh frame object holding only the known fields.
 */
export function parseServerFrame(text: string): ServerParseResult {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return fail('frame is not valid JSON');
  }
  if (!isObject(v)) return fail('frame must be a JSON object');
  const f = v;
  switch (f.type) {
    case 'welcome': {
      if (typeof f.node !== 'string' || typeof f.device !== 'string' || typeof f.user !== 'string')
        return fail('welcome.node, device and user must be strings');
      if (!isSeq(f.heartbeatMs)) return fail('welcome.heartbeatMs must be a non-negative integer');
      const streams = parseWelcomeStreams(f.streams);
      if (typeof streams === 'string') return fail(streams);
      return ok({
        type: 'welcome',
        node: f.node,
        device: f.device,
        user: f.user,
        heartbeatMs: f.heartbeatMs,
        streams,
      });
    }
    case 'notification':
      if (!isStream(f.stream)) return fail('notification.stream must be a stream name');
      if (!isSeq(f.seq)) return fail('notification.seq must be a non-negative integer');
      if (typeof f.id !== 'string' || f.id.length === 0)
        return fail('notification.id must be a non-empty string');
      if (typeof f.ts !== 'number' || !Number.isFinite(f.ts)) return fail('notification.ts must be a number');
      // priority only when sent (high or low; normal is sent as nothing). Like gap reasons, a
      // value newer than this version passes as it is; the check is this short because the
      // browser bundle's gzip budget has 2 bytes left with it (packages/client/scripts/bundle.mjs).
      return ok({
        type: 'notification',
        stream: f.stream,
        seq: f.seq,
        id: f.id,
        ts: f.ts,
        ...(typeof f.priority === 'string' && { priority: f.priority as 'high' }),
        data: f.data,
      });
    case 'gap':
      if (!isStream(f.stream)) return fail('gap.stream must be a stream name');
      if (!isSeq(f.after) || !isSeq(f.next) || f.next < 1)
        return fail('gap.after must be a non-negative integer and gap.next a positive one');
      if (typeof f.reason !== 'string') return fail('gap.reason must be a string');
      // Reasons newer than this version pass as they are: the cursor move is what matters.
      return ok({
        type: 'gap',
        stream: f.stream,
        after: f.after,
        next: f.next,
        reason: f.reason as GapFrame['reason'],
      });
    case 'subscribed':
      if (!isTopic(f.topic)) return fail('subscribed.topic is not a valid topic');
      if (!isSeq(f.cursor)) return fail('subscribed.cursor must be a non-negative integer');
      return ok({ type: 'subscribed', topic: f.topic, cursor: f.cursor });
    case 'unsubscribed':
      if (!isTopic(f.topic)) return fail('unsubscribed.topic is not a valid topic');
      return ok({ type: 'unsubscribed', topic: f.topic });
    case 'error':
      if (typeof f.code !== 'string' || typeof f.message !== 'string')
        return fail('error.code and error.message must be strings');
      if (f.topic !== undefined && typeof f.topic !== 'string') return fail('error.topic must be a string');
      return ok(
        f.topic === undefined
          ? { type: 'error', code: f.code, message: f.message }
          : { type: 'error', code: f.code, message: f.message, topic: f.topic },
      );
    case 'pong':
      return ok({ type: 'pong' });
    case 'reconnect':
      if (!isSeq(f.delayMs)) return fail('reconnect.delayMs must be a non-negative integer');
      if (typeof f.reason !== 'string') return fail('reconnect.reason must be a string');
      return ok({ type: 'reconnect', delayMs: f.delayMs, reason: f.reason });
    default: {
      if (typeof f.type !== 'string') return fail('frame.type must be a string');
      const type = f.type.slice(0, 32);
      return { ok: false, unknownType: true, type, reason: `unknown frame type ${JSON.stringify(type)}` };
    }
  }
}
