import type { StreamKeys } from '@herald/store';

/** Most sent-but-unacked (seq, id) pairs remembered per stream, for acked counts. */
const MAX_UNACKED = 1024;

/**
 * One stream as seen by one connection: what was written, what was acked, and whether a
 * replay is running (live doorbells then only mark `pending`, so the seam has no gap and no
 * duplicate).
 */
export class StreamState {
  /** JSON-encoded name, spliced into frames. */
  readonly json: string;
  /** Last seq written to the socket or announced as skipped. */
  sent: number;
  acked: number;
  syncing = false;
  pending = false;
  private readonly unackedSeq: number[] = [];
  private readonly unackedId: string[] = [];

  constructor(
    readonly name: string,
    readonly keys: StreamKeys,
    cursor: number,
  ) {
    this.json = JSON.stringify(name);
    this.sent = cursor;
    this.acked = cursor;
  }

  recordSent(seq: number, id: string): void {
    this.sent = seq;
    if (this.unackedSeq.length >= MAX_UNACKED) {
      this.unackedSeq.shift();
      this.unackedId.shift();
    }
    this.unackedSeq.push(seq);
    this.unackedId.push(id);
  }

  /** Moves the ack cursor; returns the ids newly acked (cumulative ack). */
  ack(seq: number): string[] {
    if (seq <= this.acked) return [];
    this.acked = seq;
    let n = 0;
    while (n < this.unackedSeq.length && (this.unackedSeq[n] as number) <= seq) n++;
    this.unackedSeq.splice(0, n);
    return this.unackedId.splice(0, n);
  }

  /** After a reset the stream starts again from 0. */
  reset(): void {
    this.sent = 0;
    this.acked = 0;
    this.unackedSeq.length = 0;
    this.unackedId.length = 0;
  }
}
