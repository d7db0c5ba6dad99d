import type { Cursors } from '@herald/protocol';

export type { Cursors };

/**
 * Where the client keeps its cursors (last processed seq per stream) across restarts. `load` is
 * called once, before the first connection; `save` after every change (the client never has
 * more than one `save` in flight: changes made meanwhile are coalesced into the next one).
 */
export interface CursorStorage {
  load(): Cursors | Promise<Cursors>;
  save(cursors: Cursors): void | Promise<void>;
}

function isThenable(v: unknown): v is PromiseLike<void> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Keeps the well-formed entries of a stored value; anything else is dropped. */
export function sanitizeCursors(v: unknown): Cursors {
  const out: Cursors = {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return out;
  for (const [k, seq] of Object.entries(v)) if (isSeq(seq)) out[k] = seq;
  return out;
}

/** Cursors in memory only: a new process starts from the server-side cursors. The default. */
export class MemoryCursorStorage implements CursorStorage {
  private cursors: Cursors;

  constructor(initial: Cursors = {}) {
    this.cursors = { ...initial };
  }

  load(): Cursors {
    return { ...this.cursors };
  }

  save(cursors: Cursors): void {
    this.cursors = { ...cursors };
  }
}

/** The part of the Web Storage API that `LocalStorageCursorStorage` uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface LocalStorageCursorStorageOptions {
  /**
   * Writes are delayed by this much and coalesced (a burst of notifications writes once).
   * 0 writes on every save. Default 100. Pending writes are flushed on `pagehide` where that
   * event exists, and by `flush()`.
   */
  debounceMs?: number;
}

/** Cursors in Web Storage (`localStorage` by default) under one key, as JSON. */
export class LocalStorageCursorStorage implements CursorStorage {
  private readonly storage: StorageLike;
  private readonly debounceMs: number;
  private pending: Cursors | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly key = 'herald:cursors',
    storage: StorageLike | undefined = (globalThis as { localStorage?: StorageLike }).localStorage,
    opts: LocalStorageCursorStorageOptions = {},
  ) {
    if (!storage) throw new TypeError('LocalStorageCursorStorage: no localStorage here; pass a storage');
    this.storage = storage;
    this.debounceMs = Math.max(0, opts.debounceMs ?? 100);
    const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
    if (this.debounceMs > 0 && typeof target.addEventListener === 'function')
      target.addEventListener('pagehide', () => this.flush());
  }

  load(): Cursors {
    if (this.pending) return { ...this.pending };
    const text = this.storage.getItem(this.key);
    if (text === null) return {};
    try {
      return sanitizeCursors(JSON.parse(text));
    } catch {
      return {};
    }
  }

  save(cursors: Cursors): void {
    this.pending = { ...cursors };
    if (this.debounceMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.debounceMs);
  }

  /** Writes a pending save now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const c = this.pending;
    if (!c) return;
    this.pending = undefined;
    this.storage.setItem(this.key, JSON.stringify(c));
  }
}

/**
 * The client's cursors: in memory (the truth while running) and mirrored to a `CursorStorage`.
 * Persistence is coalesced: one `save` in flight at most, the latest state written next.
 */
export class CursorTracker {
  private cursors: Cursors = {};
  private saving: Promise<void> | undefined;
  private dirty = false;
  /** Nothing is saved before the load: a save would overwrite stored cursors not read yet. */
  private loaded = false;

  constructor(
    private readonly storage: CursorStorage,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  /** Loads the stored cursors; a failed load starts empty (the server's cursors apply). */
  async load(): Promise<void> {
    try {
      const stored = sanitizeCursors(await this.storage.load());
      // Anything recorded before the load finished is newer than what was stored.
      this.cursors = { ...stored, ...this.cursors };
    } catch (err) {
      this.onError(err);
    }
    this.loaded = true;
    if (this.dirty) {
      this.dirty = false;
      this.persist();
    }
  }

  get(stream: string): number | undefined {
    return this.cursors[stream];
  }

  snapshot(): Cursors {
    return { ...this.cursors };
  }

  /** Whether `seq` on `stream` is past the cursor (not yet processed). No cursor counts as 0. */
  isNew(stream: string, seq: number): boolean {
    return seq > (this.cursors[stream] ?? 0);
  }

  /** Moves the cursor forward to `seq` (never back). */
  advance(stream: string, seq: number): void {
    if (!this.isNew(stream, seq)) return;
    this.cursors[stream] = seq;
    this.persist();
  }

  /** Sets the cursor, forward or back (a gap: `next - 1`, which after a reset is 0). */
  set(stream: string, seq: number): void {
    if (this.cursors[stream] === seq) return;
    this.cursors[stream] = seq;
    this.persist();
  }

  /** Takes the server's cursor for a stream the client has none for. */
  adopt(stream: string, seq: number): void {
    if (this.cursors[stream] !== undefined) return;
    this.set(stream, seq);
  }

  delete(stream: string): void {
    if (!(stream in this.cursors)) return;
    delete this.cursors[stream];
    this.persist();
  }

  /** Resolves when every change made so far has been handed to the storage. */
  async flush(): Promise<void> {
    while (this.saving) await this.saving;
  }

  private persist(): void {
    if (this.saving || !this.loaded) {
      this.dirty = true;
      return;
    }
    let result: void | Promise<void>;
    try {
      result = this.storage.save(this.snapshot());
    } catch (err) {
      this.onError(err);
      return;
    }
    if (!isThenable(result)) return;
    this.saving = Promise.resolve(result)
      .catch((err: unknown) => this.onError(err))
      .finally(() => {
        this.saving = undefined;
        if (this.dirty) {
          this.dirty = false;
          this.persist();
        }
      });
  }
}
