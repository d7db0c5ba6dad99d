import type { Cursors } from './frames.js';
import { parseCursors } from './parse.js';

/**
 * The compact, versioned form of a cursor map used where only a string fits: an SSE event's
 * `id:` (which the browser sends back as `Last-Event-ID`), the `cursors` query parameter and a
 * long-poll answer's `cursors`. `1.` + base64url (no padding) of the JSON of `{stream: seq}`:
 * `{"inbox":3}` is `1.eyJpbmJveCI6M30`. Stream names are ASCII (streams.ts), so the JSON is too.
 */
export const CURSORS_VERSION = '1.';
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

/**
 * Decodes an encoded cursor map, checking it as strictly as a `hello`'s cursors: version, size,
 * base64url, JSON object, at most 256 known stream names with non-negative integer seqs.
 */
export function decodeCursors(encoded: string): DecodedCursors {
  if (encoded.length > MAX_ENCODED_CURSORS)
    return { ok: false, reason: `cursors longer than ${MAX_ENCODED_CURSORS} characters` };
  if (!encoded.startsWith(CURSORS_VERSION))
    return { ok: false, reason: `cursors must start with the version ${CURSORS_VERSION}` };
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
