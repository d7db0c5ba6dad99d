import { describe, expect, it } from 'vitest';
import { Gather, type GatherSink } from '../src/sse-gather.js';

class Sink implements GatherSink {
  writableEnded = false;
  destroyed = false;
  readonly chunks: Buffer[] = [];
  write(chunk: string | Buffer): boolean {
    this.chunks.push(Buffer.from(chunk));
    return true;
  }
}

class Conn extends Gather {
  constructor(readonly sink: Sink) {
    super();
  }
}

describe("an SSE connection's tick gathering", () => {
  it('writes a tick as one Buffer: bytes, text (UTF-8 too) and seqs as digits with a blank line', () => {
    const sink = new Sink();
    const c = new Conn(sink);
    c.cork();
    const seqs = [0, 7, 9, 10, 99, 100, 12_345, 2 ** 31, Number.MAX_SAFE_INTEGER];
    let want = '';
    for (const s of seqs) {
      c.put(Buffer.from('data: x\nid: 2.inbox:'));
      c.putSeq(s);
      want += `data: x\nid: 2.inbox:${s}\n\n`;
    }
    c.put('data: "é ✓"\n\n');
    want += 'data: "é ✓"\n\n';
    c.put(': hb\n\n', true);
    want += ': hb\n\n';
    expect(c.pending).toBe(Buffer.byteLength(want));
    expect(sink.chunks).toHaveLength(0);
    c.uncork();
    expect(sink.chunks).toHaveLength(1);
    expect(sink.chunks[0]!.toString()).toBe(want);
    expect(c.pending).toBe(0);
    expect(c.writableCorked).toBe(0);
  });

  it('writes at once when not corked, and nothing once the stream has ended', () => {
    const sink = new Sink();
    const c = new Conn(sink);
    c.put(': hb\n\n', true);
    c.putSeq(42);
    expect(sink.chunks.map(String)).toEqual([': hb\n\n', '42\n\n']);
    c.cork();
    c.put('event: x\n\n');
    sink.writableEnded = true;
    c.uncork();
    expect(sink.chunks).toHaveLength(2);
  });
});
