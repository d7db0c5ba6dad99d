import type { NewEntry } from './entry.js';

/**
 * Doorbell messages on pub/sub. They carry the entry so a node that is caught up can deliver
 * without reading the stream; a node that sees a seq gap reads the stream instead, which stays
 * the truth. Format: one JSON header line, then the raw data JSON (never re-parsed by the node).
 */
export type Doorbell =
  /** Inbox entries for devices connected to one node. */
  | { k: 'inbox'; entry: NewEntry; to: [device: string, seq: number][] }
  /** A topic or broadcast entry; `stream` is the wire stream name. */
  | { k: 'stream'; stream: string; seq: number; entry: NewEntry }
  /** Subscription changed by the backend for a device connected to this node. */
  | { k: 'sub' | 'unsub'; device: string; topic: string };

interface Header {
  k: Doorbell['k'];
  i?: string;
  t?: number;
  e?: number;
  /** Priority when not normal: 'h' or 'l'. */
  p?: string;
  to?: [string, number][];
  s?: string;
  q?: number;
  dev?: string;
  top?: string;
}

/**
 * A doorbell header split around its seq, for a script that learns the seq when it appends
 * (deliver.lua): the message is `head + seq + tail + '\n' + data`.
 */
export interface BellParts {
  head: string;
  tail: string;
}

/** `,"p":"h"` for a high or low priority entry, '' for normal (the common doorbell is unchanged). */
function priorityField(entry: NewEntry): string {
  return entry.priority === undefined ? '' : `,"p":"${entry.priority === 'high' ? 'h' : 'l'}"`;
}

/** Parts of the inbox doorbell for one device. */
export function inboxBellParts(device: string, entry: NewEntry): BellParts {
  return {
    head: `{"k":"inbox","i":${JSON.stringify(entry.id)},"t":${entry.ts},"e":${entry.exp}${priorityField(entry)},"to":[[${JSON.stringify(device)},`,
    tail: ']]}',
  };
}

/** Parts of a topic or broadcast doorbell (`stream` is the wire stream name). */
export function streamBellParts(stream: string, entry: NewEntry): BellParts {
  return {
    head: `{"k":"stream","s":${JSON.stringify(stream)},"q":`,
    tail: `,"i":${JSON.stringify(entry.id)},"t":${entry.ts},"e":${entry.exp}${priorityField(entry)}}`,
  };
}

export function encodeDoorbell(b: Doorbell): string {
  switch (b.k) {
    case 'inbox':
      return `${JSON.stringify({ k: b.k, i: b.entry.id, t: b.entry.ts, e: b.entry.exp, ...(b.entry.priority ? { p: b.entry.priority === 'high' ? 'h' : 'l' } : {}), to: b.to })}\n${b.entry.data}`;
    case 'stream': {
      const { head, tail } = streamBellParts(b.stream, b.entry);
      return `${head}${b.seq}${tail}\n${b.entry.data}`;
    }
    default:
      return `${JSON.stringify({ k: b.k, dev: b.device, top: b.topic })}\n`;
  }
}

export function decodeDoorbell(message: string): Doorbell | undefined {
  const nl = message.indexOf('\n');
  if (nl < 0) return undefined;
  let h: Header;
  try {
    h = JSON.parse(message.slice(0, nl)) as Header;
  } catch {
    return undefined;
  }
  const data = message.slice(nl + 1);
  const entry = (): NewEntry => {
    const e: NewEntry = { id: h.i ?? '', ts: h.t ?? 0, exp: h.e ?? 0, data };
    if (h.p === 'h') e.priority = 'high';
    else if (h.p === 'l') e.priority = 'low';
    return e;
  };
  switch (h.k) {
    case 'inbox':
      return Array.isArray(h.to) ? { k: 'inbox', entry: entry(), to: h.to } : undefined;
    case 'stream':
      return typeof h.s === 'string' && typeof h.q === 'number'
        ? { k: 'stream', stream: h.s, seq: h.q, entry: entry() }
        : undefined;
    case 'sub':
    case 'unsub':
      return typeof h.dev === 'string' && typeof h.top === 'string'
        ? { k: h.k, device: h.dev, topic: h.top }
        : undefined;
    default:
      return undefined;
  }
}
