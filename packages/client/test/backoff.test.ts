import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff.js';

describe('Backoff', () => {
  it('has the documented defaults', () => {
    const b = new Backoff();
    expect(b.initialMs).toBe(250);
    expect(b.maxMs).toBe(30_000);
  });

  it('doubles the ceiling per attempt up to maxMs', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    const delays = Array.from({ length: 7 }, () => b.next());
    expect(delays).toEqual([99, 199, 399, 799, 999, 999, 999]);
    expect(b.attempt).toBe(7);
    expect(b.ceiling(60)).toBe(1000);
    expect(b.ceiling(5000)).toBe(1000);
  });

  it('draws the delay from [0, ceiling): bounds of the random source', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect([low.next(), low.next(), low.next()]).toEqual([0, 0, 0]);
    // A random source that returns 1 (out of contract) still stays below the ceiling.
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
    expect(high.next()).toBe(99);
  });

  it('uses full jitter: Math.random delays cover the whole window and stay in range', () => {
    for (let attempt = 0; attempt < 6; attempt++) {
      const samples: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const b = new Backoff({ initialMs: 200, maxMs: 5000 });
        for (let k = 0; k < attempt; k++) b.next();
        samples.push(b.next());
      }
      const cap = Math.min(5000, 200 * 2 ** attempt);
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...samples)).toBeLessThan(cap);
      expect(Math.min(...samples)).toBeLessThan(cap * 0.1);
      expect(Math.max(...samples)).toBeGreaterThan(cap * 0.9);
      const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
      expect(mean).toBeGreaterThan(cap * 0.4);
      expect(mean).toBeLessThan(cap * 0.6);
    }
  });

  it('starts again from the first ceiling after reset', () => {
    const b = new Backoff({ initialMs: 50, maxMs: 10_000, random: () => 0.999999 });
    b.next();
    b.next();
    b.next();
    expect(b.attempt).toBe(3);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(49);
  });

  it('never lets maxMs fall below initialMs', () => {
    const b = new Backoff({ initialMs: 500, maxMs: 100, random: () => 0.999999 });
    expect(b.next()).toBe(499);
  });
});
