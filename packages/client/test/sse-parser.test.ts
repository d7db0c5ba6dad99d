import { describe, expect, it } from 'vitest';
import { type SseEvent, type SseParser, sseParser } from '../src/http.js';

function parse(chunks: string[], max?: number): { events: SseEvent[]; comments: number; parser: SseParser } {
  const events: SseEvent[] = [];
  let comments = 0;
  const parser = sseParser(
    (e) => events.push(e),
    () => comments++,
    max,
  );
  for (const c of chunks) parser.push(c);
  return { events, comments, parser };
}

const STREAM =
  'retry: 2500\n\n' +
  ': hb\n' +
  'event: welcome\ndata: {"type":"welcome"}\n\n' +
  'event: notification\r\nid: 1.eyJpbmJveCI6M30\r\ndata: {"a":\r\ndata:  1}\r\n\r\n' +
  'data:no space\rid\r\r' +
  'event: ignored-without-data\nid: 7\n\n' +
  'bogus field\n: another comment\nevent: gap\ndata: {}\n\n';

const EXPECTED: SseEvent[] = [
  { event: 'welcome', data: '{"type":"welcome"}' },
  { event: 'notification', id: '1.eyJpbmJveCI6M30', data: '{"a":\n 1}' },
  { event: 'message', id: '', data: 'no space' },
  { event: 'gap', data: '{}' },
];

describe('SseParser', () => {
  it('parses events, ids, comments and retry (LF, CRLF and CR line ends)', () => {
    const { events, comments, parser } = parse([STREAM]);
    expect(events).toEqual(EXPECTED);
    expect(comments).toBe(2);
    expect(parser.retry).toBe(2500);
  });

  it('gives the same events whatever the chunking, one character at a time included', () => {
    expect(parse([...STREAM]).events).toEqual(EXPECTED);
    for (let cut = 1; cut < STREAM.length; cut++)
      expect(parse([STREAM.slice(0, cut), STREAM.slice(cut)]).events, `cut at ${cut}`).toEqual(EXPECTED);
  });

  it('does not dispatch an event before its blank line', () => {
    const { events } = parse(['event: notification\ndata: {}\n']);
    expect(events).toEqual([]);
  });

  it('ignores a non-numeric retry and an id with NUL', () => {
    const { events, parser } = parse(['retry: 1e3\nid: a\0b\ndata: x\n\n']);
    expect(parser.retry).toBeUndefined();
    expect(events).toEqual([{ event: 'message', data: 'x' }]);
  });

  it('throws on a line or an event over the bound', () => {
    expect(() => parse(['data: ' + 'x'.repeat(100)], 64)).toThrow(/SSE line over 64/);
    expect(() => parse([`${'data: 0123456789\n'.repeat(10)}\n`], 64)).toThrow(/SSE event over 64/);
  });
});
