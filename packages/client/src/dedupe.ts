/**
 * A bounded set of recently seen ids with least-recently-used eviction. A hit refreshes the id,
 * so an id that keeps coming back (a replay loop) stays remembered while older ones are evicted.
 */
export class RecentIds {
  private readonly ids = new Map<string, true>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError('capacity must be a non-negative integer');
  }

  get size(): number {
    return this.ids.size;
  }

  /** Whether `id` is remembered. Does not change recency. */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  /**
   * Records `id` as the most recently seen. Returns true if it was already remembered (a
   * duplicate), false if it is new. Evicts the least recently seen id past the capacity.
   */
  seen(id: string): boolean {
    if (this.capacity === 0) return false;
    const dup = this.ids.delete(id);
    this.ids.set(id, true);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.keys().next();
      if (!oldest.done) this.ids.delete(oldest.value);
    }
    return dup;
  }

  /** Ids from least to most recently seen. */
  keys(): string[] {
    return [...this.ids.keys()];
  }

  clear(): void {
    this.ids.clear();
  }
}
