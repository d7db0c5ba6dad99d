import type { ClientFrame, Cursors } from './frames.js';
import { parseStream } from './streams.js';

export const MAX_CURSORS = 256;
export const MAX_TOKEN_LENGTH = 8192;

export type ParseResult = { ok: true; frame: ClientFrame } | { ok: false; reason: string };

const fail = (reason: string): ParseResult => ({ ok: false, reason });

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Validates a cursor map (as in `hello`): the map, or the reason it is refused. */
export function parseCursors(v: unknown): Cursors | string {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'cursors must be an object';
  const out: Cursors = {};
  let n = 0;
  for (const [k, seq] of Object.entries(v)) {
    if (++n > MAX_CURSORS) return `at most ${MAX_CURSORS} cursors`;
    if (parseStream(k) === undefined) return `cursor for unknown stream ${JSON.stringify(k.slice(0, 64))}`;
    if (!isSeq(seq)) return `cursor of ${k} must be a non-negative integer`;
    out[k] = seq;
  }
  return out;
}

/**
 * Validates one client text frame. Hand-written rather than schema-compiled: the frame set is
 * small, and this runs for every frame on every socket.
 */
export function parseClientFrame(text: string): ParseResult {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return fail('frame is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('frame must be a JSON object');
  const f = v as Record<string, unknown>;
  switch (f.type) {
    case 'hello': {
      if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > MAX_TOKEN_LENGTH)
        return fail('hello.token must be a non-empty string');
      const cursors = parseCursors(f.cursors);
      if (typeof cursors === 'string') return fail(`hello.${cursors}`);
      return { ok: true, frame: { type: 'hello', token: f.token, cursors } };
    }
    case 'ack': {
      if (typeof f.stream !== 'string' || parseStream(f.stream) === undefined)
        return fail('ack.stream must be a stream name');
      if (!isSeq(f.seq)) return fail('ack.seq must be a non-negative integer');
      return { ok: true, frame: { type: 'ack', stream: f.stream, seq: f.seq } };
    }
    // A string topic that is not a valid topic name still parses: the session answers it with a
    // `topic_invalid` error frame and the connection stays open (docs/protocol.md).
    case 'subscribe': {
      if (typeof f.topic !== 'string') return fail('subscribe.topic must be a string');
      if (f.cursor !== undefined && !isSeq(f.cursor))
        return fail('subscribe.cursor must be a non-negative integer');
      return f.cursor === undefined
        ? { ok: true, frame: { type: 'subscribe', topic: f.topic } }
        : { ok: true, frame: { type: 'subscribe', topic: f.topic, cursor: f.cursor } };
    }
    case 'unsubscribe':
      if (typeof f.topic !== 'string') return fail('unsubscribe.topic must be a string');
      return { ok: true, frame: { type: 'unsubscribe', topic: f.topic } };
    case 'ping':
      return { ok: true, frame: { type: 'ping' } };
    case 'refresh':
      if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > MAX_TOKEN_LENGTH)
        return fail('refresh.token must be a non-empty string');
      return { ok: true, frame: { type: 'refresh', token: f.token } };
    default:
      return fail(`unknown frame type ${JSON.stringify(String(f.type).slice(0, 32))}`);
  }
}
