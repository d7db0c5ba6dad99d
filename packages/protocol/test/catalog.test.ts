import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CLOSE_CODES,
  CloseCode,
  closeLabel,
  FINAL_CLOSE_CODES,
  FRAME_ERRORS,
  FrameError,
  HTTP_ERRORS,
} from '../src/catalog.js';
import { DOC_TABLES, markedBlock } from '../src/catalog-docs.js';

const root = new URL('../../../', import.meta.url);

/** Table rows as trimmed cells (a formatter may pad the columns). */
function cells(table: string): string[][] {
  return table
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l))
    .map((l) =>
      l
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
}

describe('error catalog', () => {
  it('has each code once', () => {
    const http = HTTP_ERRORS.map((e) => e.code);
    expect(new Set(http).size).toBe(http.length);
    const close = CLOSE_CODES.map((c) => c.code);
    expect(new Set(close).size).toBe(close.length);
    const frame = FRAME_ERRORS.map((e) => e.code);
    expect(new Set(frame).size).toBe(frame.length);
    expect(new Set(CLOSE_CODES.map((c) => c.label)).size).toBe(close.length);
  });

  it('keeps the wire values clients depend on', () => {
    expect(CloseCode.BadFrame).toBe(4000);
    expect(CloseCode.Unauthorized).toBe(4001);
    expect(CloseCode.RateLimited).toBe(4008);
    expect(CloseCode.Draining).toBe(4012);
    expect(FrameError.TopicInvalid).toBe('topic_invalid');
    expect([...FINAL_CLOSE_CODES].sort()).toEqual([4000, 4001]);
    expect(closeLabel(4009)).toBe('slow_consumer');
    expect(closeLabel(4999)).toBe('internal');
    expect(closeLabel(1000)).toBe('other');
  });

  for (const { file, marker, render } of DOC_TABLES)
    it(`${file} ${marker} table matches the catalog`, () => {
      const doc = readFileSync(new URL(file, root), 'utf8');
      const block = markedBlock(doc, marker);
      expect(block, `${file} lacks <!-- ${marker}:start/end --> markers`).toBeDefined();
      expect(
        cells(block ?? ''),
        `${file} differs from the catalog; run: node packages/protocol/dist/catalog-docs.js --write`,
      ).toEqual(cells(render()));
    });
});
