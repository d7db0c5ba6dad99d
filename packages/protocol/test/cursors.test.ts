import { describe, expect, it } from 'vitest';
import { decodeCursors, encodeCursors, encodeCursorsText, MAX_ENCODED_CURSORS } from '../src/index.js';

describe('cursor encoding', () => {
  it('is the documented form and round-trips', () => {
    expect(encodeCursors({ inbox: 3 })).toBe('1.eyJpbmJveCI6M30');
    const c = { inbox: 3, broadcast: 0, 'topic:news.sport': 12, 'topic:a-b_c': 9_007_199_254_740_991 };
    expect(decodeCursors(encodeCursors(c))).toEqual({ ok: true, cursors: c });
    expect(decodeCursors(encodeCursors({}))).toEqual({ ok: true, cursors: {} });
  });

  it('has a text form (2.), the one SSE ids carry, decoded like the JSON one', () => {
    const c = { inbox: 3, broadcast: 0, 'topic:news.sport': 12, 'topic:a-b_c': 9_007_199_254_740_991 };
    const enc = encodeCursorsText(c);
    expect(enc).toBe('2.inbox:3,broadcast:0,topic:news.sport:12,topic:a-b_c:9007199254740991');
    expect(decodeCursors(enc)).toEqual({ ok: true, cursors: c });
    expect(decodeCursors('2.')).toEqual({ ok: true, cursors: {} });
    expect(encodeCursorsText({})).toBe('2.');
    // Unreserved or query-safe characters only: it goes in a URL as it is.
    expect(enc).toMatch(/^2\.[A-Za-z0-9_.:,-]+$/);
  });

  it('has no padding or URL-unsafe characters', () => {
    for (let n = 0; n < 40; n++) {
      const enc = encodeCursors({ [`topic:${'x'.repeat(n)}a`]: n * 997 });
      expect(enc).toMatch(/^1\.[A-Za-z0-9_-]+$/);
      expect(decodeCursors(enc).ok).toBe(true);
    }
  });

  it('refuses malformed input with a reason', () => {
    const bad: [string, RegExp][] = [
      ['', /version/],
      ['3.eyJpbmJveCI6M30', /version/],
      ['2.eyJpbmJveCI6M30', /not stream:seq/],
      ['2.inbox', /not stream:seq/],
      ['2.inbox:', /not stream:seq/],
      ['2.:3', /not stream:seq/],
      ['2.inbox:3,', /not stream:seq/],
      ['2.inbox:-1', /not stream:seq/],
      ['2.inbox:1.5', /not stream:seq/],
      ['2.inbox:12345678901234567', /not stream:seq/],
      ['2.inbox:99999999999999999', /not stream:seq/],
      ['2.inbox:9999999999999999', /non-negative integer/],
      ['2.inbox:1,inbox:2', /given twice/],
      ['2.nope:1', /unknown stream/],
      ['2.topic:a..b:1', /unknown stream/],
      ['2.__proto__:1', /unknown stream/],
      ['1.eyJpbmJveCI6M30=', /base64url/],
      ['1.ey+J', /base64url/],
      ['1.e', /base64url/],
      ['1.bm90IGpzb24', /JSON/],
      ['1.bnVsbA', /object/],
      [`1.${btoa('[1]')}`, /object/],
      [`1.${btoa('{"inbox":-1}').replace(/=+$/, '')}`, /non-negative integer/],
      [`1.${btoa('{"inbox":1.5}').replace(/=+$/, '')}`, /non-negative integer/],
      [`1.${btoa('{"nope":1}').replace(/=+$/, '')}`, /unknown stream/],
      [`1.${btoa('{"topic:a..b":1}').replace(/=+$/, '')}`, /unknown stream/],
    ];
    for (const [enc, reason] of bad) {
      const r = decodeCursors(enc);
      expect(r.ok, enc).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });

  it('is bounded: at most 256 streams and 8 KiB', () => {
    const many: Record<string, number> = {};
    for (let i = 0; i < 257; i++) many[`topic:t${i}`] = i;
    const r = decodeCursors(encodeCursors(many));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/at most 256/);
    const huge = `1.${'A'.repeat(MAX_ENCODED_CURSORS)}`;
    const h = decodeCursors(huge);
    expect(h.ok).toBe(false);
    if (!h.ok) expect(h.reason).toMatch(/longer than 8192/);
  });
});
