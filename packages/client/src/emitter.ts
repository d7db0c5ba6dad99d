export type Listener<T> = (value: T) => void;

/** Reports a listener's exception without unwinding the emitter's caller (like EventTarget does). */
function report(err: unknown): void {
  const r = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof r === 'function') r(err);
  else
    setTimeout(() => {
      throw err;
    }, 0);
}

/**
 * A tiny typed event emitter that works in browsers and Node (no `events` import). A listener
 * that throws does not stop the other listeners or the emitter: its error is reported the way
 * an EventTarget reports it (`reportError`, else an uncaught exception on a later tick).
 */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs once; returns a function that removes it. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (value) => {
      off();
      listener(value);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    set.delete(listener as Listener<never>);
    if (set.size === 0) this.listeners.delete(event);
  }

  listenerCount<K extends keyof Events>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (err) {
        report(err);
      }
    }
  }
}
