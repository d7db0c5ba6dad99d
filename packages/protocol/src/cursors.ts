import type { Cursors } from './frames.js';
import { parseCursors } from './parse.js';

/**
 * The compact, versioned forms of a cursor map used where only a string fits: an SSE event's
 * `id:` (which the browser sends back as `Last-Event-ID`), the `cursors` query parameter and a
 * long-poll answer's `cursors`. Both are accepted wherever an encoded map is read:
 *
 * - `1.` + base64url (no padding) of the JSON of `{stream: seq}`: `{"inbox":3}` is
 *   `1.eyJpbmJveCI6M30`. Long-poll answers and the SDK use it.
 * - `2.` + `stream:seq` pairs joined by `,` (the seq after a stream's last `:`): `{"inbox":3,
 *   "topic:news":7}` is `2.inbox:3,topic:news:7`. A push node writes it in every SSE event's
 *   `id:`: it keeps a connection's text of the streams that did not move and appends the moving
 *   stream's seq, with no JSON or base64 per event (BENCHMARKS.md, SSE section). Stream names
 *   have no `,` and are ASCII (streams.ts), so the text is too, and needs no escaping in a URL
 *   query.
 */
export const CURSORS_VERSION = '1.';
/** The version prefix of the text form (SSE ids). */
export const CURSORS_TEXT_VERSION = '2.';
/** Longest encoded form accepted (256 streams of short topic names fit; a longer one is 400). */
export const MAX_ENCODED_CURSORS = 8192;

const B64URL = /^[A-Za-z0-9_-]*$/;

export type DecodedCursors = { ok: true; cursors: Cursors } | { ok: false; reason: string };

/** Node's Buffer where there is one (a push node writes an `id:` per SSE event), else btoa. */
const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

function toBase64url(ascii: string): string {
  // One native call on a push node, which writes an `id:` per SSE event: the btoa path and its
  // three regex passes showed in the SSE broadcast profile (BENCHMARKS.md, SSE section).
  if (NodeBuffer) return NodeBuffer.from(ascii, 'latin1').toString('base64url');
  return btoa(ascii).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  return atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
}

/** Encodes a cursor map (at most `MAX_CURSORS` streams; the caller's map is trusted, as the server's own). */
export function encodeCursors(cursors: Readonly<Cursors>): string {
  return encodeCursorsJson(JSON.stringify(cursors));
}

/** Encodes a cursor map already written as JSON text (ASCII): a push node builds it per SSE event. */
export function encodeCursorsJson(json: string): string {
  return CURSORS_VERSION + toBase64url(json);
}

/** Encodes a cursor map in the text form `2.stream:seq,...` (what an SSE event's `id:` carries). */
export function encodeCursorsText(cursors: Readonly<Cursors>): string {
  let out = CURSORS_TEXT_VERSION;
  let first = true;
  for (const k in cursors) {
    out += `${first ? '' : ','}${k}:${cursors[k]}`;
    first = false;
  }
  return out;
}

const TEXT_SEQ = /^\d{1,16}$/;

/** The pairs of a `2.` body as a map for `parseCursors`, or why not (duplicates, no seq). */
function fromText(body: string): Record<string, number> | string {
  const out: Record<string, number> = Object.create(null) as Record<string, number>;
  if (body === '') return out;
  for (const pair of body.split(',')) {
    const at = pair.lastIndexOf(':');
    const seq = pair.slice(at + 1);
    if (at <= 0 || !TEXT_SEQ.test(seq))
      return `cursors: ${JSON.stringify(pair.slice(0, 64))} is not stream:seq`;
    const name = pair.slice(0, at);
    if (name in out) return `cursors: stream ${JSON.stringify(name.slice(0, 64))} is given twice`;
    out[name] = Number(seq);
  }
  return out;
}

/**
 * Decodes an encoded cursor map (`1.` or `2.`), checking it as strictly as a `hello`'s cursors:
 * version, size, base64url JSON object or `stream:seq` pairs, at most 256 known stream names with
 * non-negative integer seqs.
 */
export function decodeCursors(encoded: string): DecodedCursors {
  if (encoded.length > MAX_ENCODED_CURSORS)
    return { ok: false, reason: `cursors longer than ${MAX_ENCODED_CURSORS} characters` };
  if (encoded.startsWith(CURSORS_TEXT_VERSION)) {
    const v = fromText(encoded.slice(CURSORS_TEXT_VERSION.length));
    const parsed = typeof v === 'string' ? v : parseCursors(v);
    return typeof parsed === 'string' ? { ok: false, reason: parsed } : { ok: true, cursors: parsed };
  }
  if (!encoded.startsWith(CURSORS_VERSION))
    return {
      ok: false,
      reason: `cursors must start with the version ${CURSORS_VERSION} or ${CURSORS_TEXT_VERSION}`,
    };
  const body = encoded.slice(CURSORS_VERSION.length);
  if (body.length % 4 === 1 || !B64URL.test(body)) return { ok: false, reason: 'cursors are not base64url' };
  let v: unknown;
  try {
    v = JSON.parse(fromBase64url(body));
  } catch {
    return { ok: false, reason: 'cursors are not base64url JSON' };
  }
  if (v === undefined || v === null) return { ok: false, reason: 'cursors must be an object' };
  const parsed = parseCursors(v);
  if (typeof parsed === 'string') return { ok: false, reason: parsed };
  return { ok: true, cursors: parsed };
}
