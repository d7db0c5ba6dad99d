import { describe, expect, it } from 'vitest';
import { type Accepted, check, type DeviceEvent, resultTable } from '../support/chaos/checker.js';

const acc = (id: string, n: number, targets: string[], o: Partial<Accepted> = {}): Accepted => ({
  id,
  key: `k-${id}`,
  publisher: 0,
  n,
  stream: 'inbox',
  targets,
  direct: true,
  sentAt: n * 10,
  acceptedAt: n * 10 + 1,
  ...o,
});
const note = (id: string, seq: number, at: number, stream = 'inbox'): DeviceEvent => ({
  t: 'note',
  at,
  stream,
  seq,
  id,
  key: `k-${id}`,
});

describe('chaos checker', () => {
  it('a clean history: everything delivered once, in order; the wait counts only while connected', () => {
    const r = check(
      [acc('a', 0, ['d1']), acc('b', 1, ['d1'])],
      [],
      [
        {
          device: 'd1',
          transport: 'websocket',
          events: [
            { t: 'open', at: 0 },
            note('a', 1, 5),
            { t: 'down', at: 6 },
            { t: 'open', at: 40 },
            note('b', 2, 50),
          ],
        },
      ],
    );
    expect(r).toMatchObject({
      accepted: 2,
      expected: 2,
      delivered: 2,
      lost: [],
      duplicated: [],
      reorderedSeq: [],
    });
    // b was accepted at 11 while d1 was down: not a connected wait; a waited 5 - 1 = 4.
    expect(r.maxWaitConnectedMs).toBe(4);
  });

  it('finds lost, duplicated, reordered, unexpected and twice-published notifications', () => {
    const r = check(
      [acc('a', 0, ['d1']), acc('b', 1, ['d1']), acc('c', 2, ['d1']), acc('x', 3, ['d2'])],
      [{ key: 'k-u', targets: ['d1'] }],
      [
        {
          device: 'd1',
          transport: 'sse',
          events: [
            { t: 'open', at: 0 },
            note('b', 2, 5),
            note('a', 3, 6), // 202 order says a before b
            note('a', 4, 7), // emitted twice
            note('x', 5, 8), // not a target of x
            note('u', 6, 9), // unconfirmed publish to d1: fine
            { t: 'note', at: 10, stream: 'inbox', seq: 6, id: 'a2', key: 'k-a' }, // key k-a under another id; seq not above 6
          ],
        },
      ],
    );
    expect(r.lost).toEqual([{ id: 'c', device: 'd1', stream: 'inbox' }]);
    expect(r.duplicated).toEqual([{ id: 'a', device: 'd1', times: 2 }]);
    expect(r.duplicatedByKey).toEqual([{ key: 'k-a', device: 'd1', ids: ['a', 'a2'] }]);
    expect(r.reorderedDirect).toHaveLength(1);
    expect(r.reorderedSeq).toEqual([{ device: 'd1', stream: 'inbox', seq: 6, after: 6 }]);
    expect(r.unexpected).toEqual([
      { id: 'x', device: 'd1' },
      { id: 'a2', device: 'd1' },
    ]);
  });

  it('counts a missing notification on a stream with a gap as announced, not lost', () => {
    const r = check(
      [acc('a', 0, ['d1'])],
      [],
      [
        {
          device: 'd1',
          transport: 'poll',
          events: [{ t: 'gap', at: 3, stream: 'inbox', after: 0, next: 2, reason: 'expired' }],
        },
      ],
    );
    expect(r.lost).toEqual([]);
    expect(r.lostWithGap).toBe(1);
    const table = resultTable(7, r, new Map([['node-kill9', 2]]));
    expect(table).toContain('| seed');
    expect(table).toMatch(/gaps\s+\| expired: 1 \|/);
    expect(table).toMatch(/node-kill9\s+\| 2 \|/);
  });
});
