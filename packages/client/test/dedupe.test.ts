import { describe, expect, it } from 'vitest';
import { RecentIds } from '../src/dedupe.js';

describe('RecentIds', () => {
  it('reports an id as a duplicate the second time', () => {
    const r = new RecentIds(10);
    expect(r.seen('a')).toBe(false);
    expect(r.seen('a')).toBe(true);
    expect(r.has('a')).toBe(true);
    expect(r.has('b')).toBe(false);
  });

  it('stays within its capacity, evicting the least recently seen first', () => {
    const r = new RecentIds(3);
    for (const id of ['a', 'b', 'c', 'd', 'e']) r.seen(id);
    expect(r.size).toBe(3);
    expect(r.keys()).toEqual(['c', 'd', 'e']);
    expect(r.has('a')).toBe(false);
    expect(r.seen('a')).toBe(false);
    expect(r.keys()).toEqual(['d', 'e', 'a']);
  });

  it('refreshes an id on a hit, so it outlives ids seen after it', () => {
    const r = new RecentIds(3);
    r.seen('a');
    r.seen('b');
    r.seen('c');
    expect(r.seen('a')).toBe(true);
    r.seen('d');
    expect(r.keys()).toEqual(['c', 'a', 'd']);
    expect(r.has('b')).toBe(false);
    expect(r.has('a')).toBe(true);
  });

  it('has() does not change recency', () => {
    const r = new RecentIds(2);
    r.seen('a');
    r.seen('b');
    r.has('a');
    r.seen('c');
    expect(r.keys()).toEqual(['b', 'c']);
  });

  it('with capacity 0 remembers nothing', () => {
    const r = new RecentIds(0);
    expect(r.seen('a')).toBe(false);
    expect(r.seen('a')).toBe(false);
    expect(r.size).toBe(0);
  });

  it('holds a large window bounded', () => {
    const r = new RecentIds(1000);
    for (let i = 0; i < 5000; i++) r.seen(`id-${i}`);
    expect(r.size).toBe(1000);
    expect(r.has('id-3999')).toBe(false);
    expect(r.has('id-4000')).toBe(true);
  });

  it('rejects a bad capacity', () => {
    expect(() => new RecentIds(-1)).toThrow(RangeError);
    expect(() => new RecentIds(1.5)).toThrow(RangeError);
  });
});
