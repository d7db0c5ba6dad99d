import { describe, expect, it } from 'vitest';
import { orderKeys, TargetOrder } from '../src/order.js';

/** A job that finishes when the test says so, recording when it started. */
function gate(log: string[], name: string): { fn: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((r) => {
    open = r;
  });
  return {
    fn: async () => {
      log.push(`start ${name}`);
      await p;
      log.push(`end ${name}`);
    },
    open,
  };
}

describe('TargetOrder', () => {
  it('runs jobs for different targets at once and jobs for the same target in order', async () => {
    const order = new TargetOrder();
    const log: string[] = [];
    const a1 = gate(log, 'a1');
    const b1 = gate(log, 'b1');
    const a2 = gate(log, 'a2');
    const runs = [order.run(['d:a'], a1.fn), order.run(['d:b'], b1.fn), order.run(['d:a', 'd:c'], a2.fn)];
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['start a1', 'start b1']);
    a2.open(); // a2 may not start before a1 ends, even when it is ready
    b1.open();
    await runs[1];
    expect(log).not.toContain('start a2');
    a1.open();
    await Promise.all(runs);
    expect(log.indexOf('end a1')).toBeLessThan(log.indexOf('start a2'));
    expect(order.size).toBe(0);
  });

  it('stops waiting for a stuck earlier job after its bound', async () => {
    const order = new TargetOrder(50);
    const stuck = gate([], 'stuck');
    void order.run(['d:a'], stuck.fn);
    await expect(order.run(['d:a'], async () => 'went on')).resolves.toBe('went on');
    stuck.open();
  });

  it('goes on after a failed job', async () => {
    const order = new TargetOrder();
    const failed = order.run(['t:x'], async () => {
      throw new Error('boom');
    });
    const next = order.run(['t:x'], async () => 'ran');
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ran');
  });

  it('keys a notification by what it is addressed to', () => {
    expect(orderKeys({ devices: ['a', 'b'] })).toEqual(['d:a', 'd:b']);
    expect(orderKeys({ users: ['u'] })).toEqual(['u:u']);
    expect(orderKeys({ topic: 'news' })).toEqual(['t:news']);
    expect(orderKeys({ broadcast: true })).toEqual(['b']);
  });
});
