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
   * `cursor`: where delivery resumes. `acked`: where the device's stored acks stand, when below
   * the cursor (entries it read elsewhere, e.g. from a Web Push, are acked by acking up to them).
   */
  constructor(
    readonly name: string,
    cursor: number,
    acked = cursor,
  ) {
    this.json = name === INBOX ? INBOX_JSON : name === BROADCAST ? BROADCAST_JSON : JSON.stringify(name);
    this.sent = cursor;
    this.acked = Math.min(acked, cursor);
  }

  /** The oldest seq sent on this connection and not acked yet, if it is still remembered. */
  oldestUnacked(): number | undefined {
    const u = this.unacked;
    return u && this.head < u.length ? (u[this.head] as number) : undefined;
  }

  recordSent(seq: number, id: string): void {
    this.sent = seq;
    if (!this.unacked) this.unacked = [];
    const u = this.unacked;
    if (u.length - this.head >= MAX_UNACKED * 2) this.head += 2;
    u.push(seq, id);
    this.compact();
  }

  /** Moves the ack cursor; returns the ids newly acked (cumulative ack). */
  ack(seq: number): string[] {
    if (seq <= this.acked) return [];
    this.acked = seq;
    const u = this.unacked;
    const ids: string[] = [];
    if (!u) return ids;
    let i = this.head;
    while (i < u.length && (u[i] as number) <= seq) {
      ids.push(u[i + 1] as string);
      i += 2;
    }
    this.head = i;
    this.compact();
    return ids;
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
