import { BROADCAST, INBOX } from '@herald/protocol';

/** Most sent-but-unacked (seq, id) pairs remembered per stream, for acked counts. */
const MAX_UNACKED = 1024;

const INBOX_JSON = JSON.stringify(INBOX);
const BROADCAST_JSON = JSON.stringify(BROADCAST);

/**
 * One stream as seen by one connection: what was written, what was acked, and whether a
 * replay is running (live doorbells then only mark `pending`, so the seam has no gap and no
 * duplicate). Kept small: every connection holds two (inbox and broadcast) for its whole life,
 * so the unacked lists are allocated on the first delivery and the JSON name is shared.
 */
export class StreamState {
  /** JSON-encoded name, spliced into frames. */
  readonly json: string;
  /** Last seq written to the socket or announced as skipped. */
  sent: number;
  acked: number;
  syncing = false;
  pending = false;
  /** Sent and not yet acked: seq, id, seq, id... (undefined until the first delivery). */
  private unacked: (number | string)[] | undefined = undefined;
  /** Index of the oldest pair still in `unacked`. */
  private head = 0;

  /**
   * `cursor`: where delivery resumes. `acked`: where the device's stored acks stand; below the
   * cursor when it read entries elsewhere (e.g. from a Web Push), which it acks by acking them.
   */
  constructor(
    readonly name: string,
    cursor: number,
    acked = cursor,
  ) {
    this.json = name === INBOX ? INBOX_JSON : name === BROADCAST ? BROADCAST_JSON : JSON.stringify(name);
    this.sent = cursor;
    this.acked = acked;
  }

  /** The oldest seq above `after` sent on this connection and not acked, if still remembered. */
  firstSentAfter(after: number): number | undefined {
    const u = this.unacked;
    if (!u) return undefined;
    // Only entries replayed below a stored cursor ahead of the client's come first: few.
    for (let i = this.head; i < u.length; i += 2) if ((u[i] as number) > after) return u[i] as number;
    return undefined;
  }

  recordSent(seq: number, id: string): void {
    this.sent = seq;
    if (!this.unacked) this.unacked = [];
    const u = this.unacked;
    if (u.length - this.head >= MAX_UNACKED * 2) this.head += 2;
    u.push(seq, id);
    this.compact();
  }

  /**
   * Moves the ack cursor; hands each entry sent here and newly acked (cumulative ack) to `each`
   * with its seq (the pairs are kept anyway, so the seq costs nothing: no list is built per ack)
   * and returns how many.
   */
  ack(seq: number, each: (id: string, seq: number) => void): number {
    if (seq <= this.acked) return 0;
    const from = this.acked;
    this.acked = seq;
    const u = this.unacked;
    if (!u) return 0;
    let n = 0;
    let i = this.head;
    while (i < u.length && (u[i] as number) <= seq) {
      // Sent again below the stored cursor (the client resumed from an older cursor): counted before.
      if ((u[i] as number) > from) {
        each(u[i + 1] as string, u[i] as number);
        n++;
      }
      i += 2;
    }
    this.head = i;
    this.compact();
    return n;
  }

  /** Drops acked pairs from the front once they are half the list; frees it when empty. */
  private compact(): void {
    const u = this.unacked;
    if (!u) return;
    if (this.head >= u.length) {
      this.unacked = undefined;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 >= u.length) {
      u.splice(0, this.head);
      this.head = 0;
    }
  }

  /** After a reset the stream starts again from 0. */
  reset(): void {
    this.sent = 0;
    this.acked = 0;
    this.unacked = undefined;
    this.head = 0;
  }
}
