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
}

/** What the worker appends: an entry before it has a seq. */
export type NewEntry = Omit<Entry, 'seq'>;

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
    }
  }
  return e;
}
