import { describe, expect, it } from 'vitest';
import {
  encodeNotification,
  parseClientFrame,
  parseStream,
  topicAllowed,
  topicMatches,
} from '../src/index.js';

describe('parseClientFrame', () => {
  it('accepts every client frame', () => {
    expect(
      parseClientFrame('{"type":"hello","token":"t","cursors":{"inbox":3,"topic:a.b":1,"broadcast":0}}'),
    ).toEqual({
      ok: true,
      frame: { type: 'hello', token: 't', cursors: { inbox: 3, 'topic:a.b': 1, broadcast: 0 } },
    });
    expect(parseClientFrame('{"type":"ack","stream":"inbox","seq":4}').ok).toBe(true);
    expect(parseClientFrame('{"type":"subscribe","topic":"news","cursor":2}')).toEqual({
      ok: true,
      frame: { type: 'subscribe', topic: 'news', cursor: 2 },
    });
    expect(parseClientFrame('{"type":"unsubscribe","topic":"news"}').ok).toBe(true);
    expect(parseClientFrame('{"type":"ping"}').ok).toBe(true);
    expect(parseClientFrame('{"type":"refresh","token":"x"}').ok).toBe(true);
  });

  it.each([
    ['{bad', 'not valid JSON'],
    ['[1]', 'JSON object'],
    ['null', 'JSON object'],
    ['{"type":"nope"}', 'unknown frame type'],
    ['{"type":"hello"}', 'token'],
    ['{"type":"hello","token":"t","cursors":{"inbox":-1}}', 'non-negative'],
    ['{"type":"hello","token":"t","cursors":{"inbox":1.5}}', 'non-negative'],
    ['{"type":"hello","token":"t","cursors":{"inbox":1e300}}', 'non-negative'],
    ['{"type":"hello","token":"t","cursors":{"weird":1}}', 'unknown stream'],
    ['{"type":"hello","token":"t","cursors":[1]}', 'object'],
    ['{"type":"ack","stream":"inbox","seq":"4"}', 'seq'],
    ['{"type":"ack","stream":"x","seq":4}', 'stream'],
    ['{"type":"subscribe","topic":7}', 'topic'],
    ['{"type":"unsubscribe"}', 'topic'],
    ['{"type":"subscribe","topic":"ok","cursor":-2}', 'cursor'],
  ])('rejects %s', (text, reason) => {
    const r = parseClientFrame(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('bounds the number of cursors', () => {
    const cursors = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`topic:t${i}`, 1]));
    expect(parseClientFrame(JSON.stringify({ type: 'hello', token: 't', cursors })).ok).toBe(false);
  });
});

describe('topics', () => {
  it('matches patterns segment by segment', () => {
    expect(topicMatches('news', 'news')).toBe(true);
    expect(topicMatches('news.*', 'news.sport')).toBe(true);
    expect(topicMatches('news.*', 'news.sport.f1')).toBe(false);
    expect(topicMatches('news.>', 'news.sport.f1')).toBe(true);
    expect(topicMatches('news.>', 'news')).toBe(false);
    expect(topicMatches('*.eu', 'weather.eu')).toBe(true);
    expect(topicMatches('news', 'news.sport')).toBe(false);
  });

  it('allows everything without a claim and only matches with one', () => {
    expect(topicAllowed(undefined, 'x')).toBe(true);
    expect(topicAllowed([], 'x')).toBe(false);
    expect(topicAllowed(['a.*', 'b'], 'b')).toBe(true);
  });

  it('parses stream names', () => {
    expect(parseStream('inbox')).toEqual({ kind: 'inbox' });
    expect(parseStream('broadcast')).toEqual({ kind: 'broadcast' });
    expect(parseStream('topic:a.b')).toEqual({ kind: 'topic', topic: 'a.b' });
    expect(parseStream('topic:')).toBeUndefined();
  });
});

describe('encodeNotification', () => {
  it('produces the same JSON as encoding the frame object', () => {
    const text = encodeNotification(JSON.stringify('topic:a"b'), 3, 'abc', 17, '{"x":[1,"\\u00e9"]}');
    expect(JSON.parse(text)).toEqual({
      type: 'notification',
      stream: 'topic:a"b',
      seq: 3,
      id: 'abc',
      ts: 17,
      data: { x: [1, 'é'] },
    });
  });
});
