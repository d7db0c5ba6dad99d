import { describe, expect, it } from 'vitest';
import {
  type CursorStorage,
  type Cursors,
  CursorTracker,
  LocalStorageCursorStorage,
  MemoryCursorStorage,
  type StorageLike,
  sanitizeCursors,
} from '../src/cursors.js';

class FakeWebStorage implements StorageLike {
  readonly map = new Map<string, string>();
  writes = 0;
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.writes++;
    this.map.set(key, value);
  }
}

/** An async storage whose saves complete only when the test says so. */
class ManualStorage implements CursorStorage {
  readonly saves: Cursors[] = [];
  private resolvers: (() => void)[] = [];
  load(): Promise<Cursors> {
    return Promise.resolve({ inbox: 3 });
  }
  save(c: Cursors): Promise<void> {
    this.saves.push(c);
    return new Promise((r) => this.resolvers.push(r));
  }
  complete(): void {
    const r = this.resolvers;
    this.resolvers = [];
    for (const f of r) f();
  }
}

describe('CursorTracker', () => {
  it('decides what is new, moves forward only on advance, and persists', async () => {
    const storage = new MemoryCursorStorage({ inbox: 5 });
    const t = new CursorTracker(storage);
    await t.load();
    expect(t.isNew('inbox', 5)).toBe(false);
    expect(t.isNew('inbox', 6)).toBe(true);
    expect(t.isNew('broadcast', 1)).toBe(true);
    expect(t.isNew('broadcast', 0)).toBe(false);
    t.advance('inbox', 7);
    t.advance('inbox', 6);
    expect(t.get('inbox')).toBe(7);
    expect(storage.load()).toEqual({ inbox: 7 });
  });

  it('sets a cursor back on set (a reset gap), adopts only missing ones, deletes', async () => {
    const storage = new MemoryCursorStorage();
    const t = new CursorTracker(storage);
    await t.load();
    t.advance('inbox', 10);
    t.set('inbox', 0);
    expect(t.get('inbox')).toBe(0);
    t.adopt('inbox', 50);
    t.adopt('broadcast', 9);
    expect(t.snapshot()).toEqual({ inbox: 0, broadcast: 9 });
    t.delete('broadcast');
    expect(storage.load()).toEqual({ inbox: 0 });
  });

  it('keeps changes made before the load finished over the stored ones', async () => {
    const storage = new MemoryCursorStorage({ inbox: 2, broadcast: 4 });
    const t = new CursorTracker(storage);
    t.advance('inbox', 9);
    // Nothing is written before the load, so the stored broadcast cursor survives.
    expect(storage.load()).toEqual({ inbox: 2, broadcast: 4 });
    await t.load();
    expect(t.snapshot()).toEqual({ inbox: 9, broadcast: 4 });
    expect(storage.load()).toEqual({ inbox: 9, broadcast: 4 });
  });

  it('starts empty when the load fails, and reports it', async () => {
    const errors: unknown[] = [];
    const t = new CursorTracker(
      {
        load: () => Promise.reject(new Error('disk on fire')),
        save: () => undefined,
      },
      (e) => errors.push(e),
    );
    await t.load();
    expect(t.snapshot()).toEqual({});
    expect(errors).toHaveLength(1);
  });

  it('keeps one async save in flight and coalesces changes into the next', async () => {
    const storage = new ManualStorage();
    const t = new CursorTracker(storage);
    await t.load();
    t.advance('inbox', 4);
    t.advance('inbox', 5);
    t.advance('inbox', 6);
    expect(storage.saves).toEqual([{ inbox: 4 }]);
    storage.complete();
    await new Promise((r) => setImmediate(r));
    expect(storage.saves).toEqual([{ inbox: 4 }, { inbox: 6 }]);
    const flushed = t.flush();
    storage.complete();
    await flushed;
    expect(storage.saves).toHaveLength(2);
  });

  it('reports a failing save and goes on', async () => {
    const errors: unknown[] = [];
    const t = new CursorTracker(
      {
        load: () => ({}),
        save: () => {
          throw new Error('quota');
        },
      },
      (e) => errors.push(e),
    );
    await t.load();
    t.advance('inbox', 1);
    t.advance('inbox', 2);
    expect(t.get('inbox')).toBe(2);
    expect(errors).toHaveLength(2);
  });
});

describe('sanitizeCursors', () => {
  it('keeps non-negative integer seqs only', () => {
    expect(sanitizeCursors({ inbox: 3, a: -1, b: 1.5, c: '4', d: null })).toEqual({ inbox: 3 });
    expect(sanitizeCursors([1, 2])).toEqual({});
    expect(sanitizeCursors('x')).toEqual({});
  });
});

describe('MemoryCursorStorage', () => {
  it('copies on load and save', () => {
    const s = new MemoryCursorStorage({ inbox: 1 });
    const c = s.load();
    c.inbox = 99;
    expect(s.load()).toEqual({ inbox: 1 });
  });
});

describe('LocalStorageCursorStorage', () => {
  it('round-trips cursors as JSON under its key', () => {
    const ws = new FakeWebStorage();
    const s = new LocalStorageCursorStorage('k', ws, { debounceMs: 0 });
    s.save({ inbox: 4, 'topic:news': 9 });
    expect(JSON.parse(ws.map.get('k')!)).toEqual({ inbox: 4, 'topic:news': 9 });
    expect(new LocalStorageCursorStorage('k', ws).load()).toEqual({ inbox: 4, 'topic:news': 9 });
  });

  it('uses herald:cursors by default and reads nothing or garbage as empty', () => {
    const ws = new FakeWebStorage();
    const s = new LocalStorageCursorStorage(undefined, ws);
    expect(s.key).toBe('herald:cursors');
    expect(s.load()).toEqual({});
    ws.map.set('herald:cursors', '{not json');
    expect(s.load()).toEqual({});
    ws.map.set('herald:cursors', '{"inbox":"x","broadcast":2}');
    expect(s.load()).toEqual({ broadcast: 2 });
  });

  it('debounces writes, and flush() writes the latest now', () => {
    const ws = new FakeWebStorage();
    const s = new LocalStorageCursorStorage('k', ws, { debounceMs: 10_000 });
    s.save({ inbox: 1 });
    s.save({ inbox: 2 });
    s.save({ inbox: 3 });
    expect(ws.writes).toBe(0);
    expect(s.load()).toEqual({ inbox: 3 });
    s.flush();
    expect(ws.writes).toBe(1);
    expect(JSON.parse(ws.map.get('k')!)).toEqual({ inbox: 3 });
    s.flush();
    expect(ws.writes).toBe(1);
  });

  it('writes after the debounce delay', async () => {
    const ws = new FakeWebStorage();
    const s = new LocalStorageCursorStorage('k', ws, { debounceMs: 5 });
    s.save({ inbox: 1 });
    s.save({ inbox: 2 });
    await new Promise((r) => setTimeout(r, 50));
    expect(ws.writes).toBe(1);
    expect(JSON.parse(ws.map.get('k')!)).toEqual({ inbox: 2 });
  });

  it('needs a storage where there is no localStorage', () => {
    expect(() => new LocalStorageCursorStorage()).toThrow(TypeError);
  });
});
