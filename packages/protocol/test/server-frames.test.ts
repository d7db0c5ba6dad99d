import { describe, expect, it } from 'vitest';
import { parseServerFrame } from '../src/index.js';

const parse = (f: unknown) => parseServerFrame(JSON.stringify(f));

describe('parseServerFrame', () => {
  it('accepts every server frame and keeps only the known fields', () => {
    const welcome = {
      type: 'welcome',
      node: 'node-1',
      device: 'd',
      user: 'u',
      heartbeatMs: 25000,
      streams: { inbox: { cursor: 3 }, 'topic:news': { cursor: 0 } },
    };
    expect(parse({ ...welcome, extra: 1 })).toEqual({ ok: true, frame: welcome });
    const n = { type: 'notification', stream: 'inbox', seq: 4, id: 'n4', ts: 1, data: { a: [1] } };
    expect(parse(n)).toEqual({ ok: true, frame: n });
    expect(parse({ type: 'gap', stream: 'broadcast', after: 1, next: 9, reason: 'trimmed' }).ok).toBe(true);
    expect(parse({ type: 'subscribed', topic: 'a.b', cursor: 2 }).ok).toBe(true);
    expect(parse({ type: 'unsubscribed', topic: 'a.b' }).ok).toBe(true);
    expect(parse({ type: 'error', code: 'topic_forbidden', message: 'no', topic: 'x' })).toEqual({
      ok: true,
      frame: { type: 'error', code: 'topic_forbidden', message: 'no', topic: 'x' },
    });
    expect(parse({ type: 'pong' })).toEqual({ ok: true, frame: { type: 'pong' } });
    expect(parse({ type: 'reconnect', delayMs: 200, reason: 'node draining' }).ok).toBe(true);
  });

  it('marks a frame type it does not know, so a client can skip it', () => {
    expect(parse({ type: 'future', x: 1 })).toEqual({
      ok: false,
      unknownType: true,
      type: 'future',
      reason: 'unknown frame type "future"',
    });
  });

  it.each([
    ['{bad', 'not valid JSON'],
    ['[1]', 'JSON object'],
    ['{"x":1}', 'frame.type'],
    ['{"type":"welcome","node":"n","device":"d","user":"u","heartbeatMs":1}', 'welcome.streams'],
    [
      '{"type":"welcome","node":"n","device":"d","user":"u","heartbeatMs":1,"streams":{"x":{"cursor":1}}}',
      'unknown stream',
    ],
    [
      '{"type":"welcome","node":"n","device":"d","user":"u","heartbeatMs":1,"streams":{"inbox":{"cursor":-1}}}',
      'cursor',
    ],
    ['{"type":"welcome","node":1,"device":"d","user":"u","heartbeatMs":1,"streams":{}}', 'welcome.node'],
    ['{"type":"notification","stream":"nope","seq":1,"id":"a","ts":1}', 'notification.stream'],
    ['{"type":"notification","stream":"inbox","seq":1.5,"id":"a","ts":1}', 'notification.seq'],
    ['{"type":"notification","stream":"inbox","seq":1,"ts":1}', 'notification.id'],
    ['{"type":"notification","stream":"inbox","seq":1,"id":"a"}', 'notification.ts'],
    ['{"type":"gap","stream":"inbox","after":0,"next":0,"reason":"trimmed"}', 'gap.next'],
    ['{"type":"subscribed","topic":"a b","cursor":0}', 'subscribed.topic'],
    ['{"type":"unsubscribed"}', 'unsubscribed.topic'],
    ['{"type":"error","code":"x"}', 'error.code'],
    ['{"type":"reconnect","delayMs":"soon","reason":"r"}', 'reconnect.delayMs'],
  ])('rejects %s', (text, reason) => {
    const r = parseServerFrame(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.unknownType).toBe(false);
      expect(r.reason).toContain(reason);
    }
  });
});
