import type { StreamEntryReply } from './scripts.js';

/** One notification as stored in a stream. `data` is raw JSON text. */
export interface Entry {
  seq: number;
  id: string;
  data: string;
  /** Accept time, ms. */
  ts: number;
  /** Expiry, ms. */
  exp: number;
  /** The publish's collapseKey (field `k`, stored only when set). */
  collapseKey?: string;
  /** The publish's priority when not normal (field `p`: `h` or `l`, stored only then). */
  priority?: 'high' | 'low';
  /**
   * Read only (streams.ts read): a later entry on the stream holds the same collapseKey, so
   * this one is not delivered to a device that had not received it (a `collapsed` gap instead).
   */
  collapsed?: boolean;
}

/** What the worker appends: an entry before it has a seq. */
export type NewEntry = Omit<Entry, 'seq' | 'collapsed'>;

/** The Lua arguments of an entry's collapseKey and priority ('' when absent). */
export function entryOptionArgs(e: NewEntry): [collapseKey: string, priority: string] {
  return [e.collapseKey ?? '', e.priority === 'high' ? 'h' : e.priority === 'low' ? 'l' : ''];
}

export function decodeEntry([rid, fields]: StreamEntryReply): Entry {
  const e: Entry = { seq: Number.parseInt(rid, 10), id: '', data: 'null', ts: 0, exp: 0 };
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const v = fields[i + 1] as string;
    switch (fields[i]) {
      case 'i':
        e.id = v;
        break;
      case 'd':
        e.data = v;
        break;
      case 't':
        e.ts = Number(v);
        break;
      case 'e':
        e.exp = Number(v);
        break;
      case 'k':
        e.collapseKey = v;
        break;
      case 'p':
        if (v === 'h') e.priority = 'high';
        else if (v === 'l') e.priority = 'low';
        break;
    }
  }
  return e;
}
