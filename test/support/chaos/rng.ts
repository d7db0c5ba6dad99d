/** A seeded PRNG (mulberry32): the same seed replays the same campaign schedule. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`seed must be an integer in 0..4294967295, got ${seed}`);
    }
    this.state = seed;
  }

  /** In [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** A new generator for a sub-task (publisher, fault schedule), independent of call order elsewhere. */
  fork(salt: number): Rng {
    return new Rng((Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) + salt * 0x27d4eb2f) >>> 0);
  }
}

/** The seed from HERALD_CHAOS_SEED (decimal), else a new random one. */
export function seedFromEnv(): number {
  const raw = process.env.HERALD_CHAOS_SEED;
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 0xffffffff);
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 0xffffffff) {
    throw new Error(`HERALD_CHAOS_SEED must be an integer in 0..4294967295, got ${JSON.stringify(raw)}`);
  }
  return n;
}
