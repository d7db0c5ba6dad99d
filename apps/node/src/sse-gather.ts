import type { Corkable } from './cork.js';

/** What a gathered tick is written to (the SSE stream's socket or response). */
export interface GatherSink {
  write(chunk: string | Buffer): boolean;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

const NL2 = 0x0a;

/** Decimal digits of a seq (a non-negative safe integer). */
function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes `n` in decimal then a blank line (`\n\n`) at `at`; returns the end. */
function writeSeq(b: Buffer, at: number, n: number): number {
  const end = at + digits(n);
  let i = end;
  do {
    b[--i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  b[end] = NL2;
  b[end + 1] = NL2;
  return end + 2;
}

/**
 * One SSE connection's bytes of a tick, gathered and written as one Buffer at the tick's end
 * (`cork` / `uncork`, driven by cork.ts). A notification is the bytes shared by every connection
 * (the event up to its last `data:` line), this connection's `id:` head (bytes, kept while one
 * stream moves) and the seq, written as digits here: no string or Buffer per event and
 * connection. One write of one Buffer per tick costs less CPU than a write per part: measured
 * with `node bench/dist/write-cork.js` (1,000 sockets, 32 events a tick), 0.9-1.2 us per event
 * against 1.4-1.9 us with two corked writes per event and 2.2-2.5 us with the JSON+base64url `id:`
 * (BENCHMARKS.md, SSE section).
 *
 * A base class of `SseConn` (not an object of its own: idle memory per connection is a target).
 */
export abstract class Gather implements Corkable {
  /** This tick's parts: bytes, text, or a seq (digits and the blank line that ends its event). */
  private parts: (Buffer | string | number)[] | undefined = undefined;
  private bytes = 0;

  protected abstract readonly sink: GatherSink;

  /** Bytes gathered this tick, not yet handed to the socket. */
  get pending(): number {
    return this.bytes;
  }

  get writableCorked(): number {
    return this.parts === undefined ? 0 : 1;
  }

  cork(): void {
    this.parts ??= [];
  }

  /** Adds bytes, or text (`ascii`: known to be ASCII, so its length is its size). */
  put(part: Buffer | string, ascii = false): void {
    if (this.parts === undefined) {
      this.send(part);
      return;
    }
    this.parts.push(part);
    this.bytes += typeof part !== 'string' || ascii ? part.length : Buffer.byteLength(part);
  }

  /** Adds a seq's digits and the blank line that ends an event. */
  putSeq(seq: number): void {
    if (this.parts === undefined) {
      this.send(`${seq}\n\n`);
      return;
    }
    this.parts.push(seq);
    this.bytes += digits(seq) + 2;
  }

  /** Drops what was gathered (the stream closed). */
  protected discard(): void {
    this.parts = undefined;
    this.bytes = 0;
  }

  /** Writes what the tick gathered, as one Buffer. */
  uncork(): void {
    const parts = this.parts;
    if (parts === undefined) return;
    this.parts = undefined;
    const n = this.bytes;
    this.bytes = 0;
    if (parts.length === 0) return;
    const one = parts[0]!;
    if (parts.length === 1 && typeof one !== 'number') {
      this.send(one);
      return;
    }
    const b = Buffer.allocUnsafe(n);
    let at = 0;
    for (const p of parts)
      at +=
        typeof p === 'number'
          ? writeSeq(b, at, p) - at
          : typeof p === 'string'
            ? b.write(p, at)
            : p.copy(b, at);
    this.send(b);
  }

  /** Straight to the socket, unless it has ended (a stream closed in the middle of a tick). */
  private send(chunk: Buffer | string): void {
    const s = this.sink;
    if (!s.writableEnded && !s.destroyed) s.write(chunk);
  }
}
