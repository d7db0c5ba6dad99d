import { FrameError, isValidTopic, topicAllowed, topicStream } from '@herald/protocol';
import { Delivery } from './delivery.js';
import { StreamState } from './stream-state.js';

const NO_CURSORS: Readonly<Record<string, number>> = Object.freeze({});

/**
 * What a device asks of its streams once it is in: acks, subscribe and unsubscribe. The middle
 * layer of a session (delivery.ts below, session.ts above), transport-neutral like both.
 */
export abstract class Requests extends Delivery {
  /** The device's stored cursors, read at hello. */
  protected serverCursors: Readonly<Record<string, number>> = NO_CURSORS;

  private get topicCount(): number {
    return this.topics?.size ?? 0;
  }

  protected topicMap(): Map<string, StreamState> {
    if (!this.topics) this.topics = new Map();
    return this.topics;
  }

  // ---- acks ----

  /**
   * Cumulative ack: moves the stored cursor and counts the entries up to `seq` as acked. Entries
   * sent on this connection are remembered (stream-state.ts); those the device had before it
   * resumed (its hello cursor past its stored cursor: read offline, e.g. from a Web Push) or
   * that were skipped are read back from the stream, at most `replayBatch` per ack.
   */
  protected async ack(stream: string, seq: number): Promise<void> {
    const st = this.stream(stream);
    if (!st) {
      this.error(FrameError.UnknownStream, `not delivering ${stream} on this connection`);
      return;
    }
    if (seq > st.sent) {
      this.error(FrameError.BadAck, `ack ${seq} is past the last sent seq ${st.sent}`);
      return;
    }
    if (seq <= st.acked) return;
    const { deps } = this;
    const device = this.identity!.device;
    const from = st.acked;
    const unsentTo = Math.min(seq, (st.firstSentAfter(from) ?? st.sent + 1) - 1);
    deps.stats.acks += st.ack(seq, (id, at) => deps.receipts.acked(id, { device, stream, seq: at }));
    deps.receipts.cursor(device, stream, seq);
    if (unsentTo > from) await this.ackUnsent(stream, device, from, unsentTo);
  }

  private async ackUnsent(stream: string, device: string, from: number, to: number): Promise<void> {
    const { deps } = this;
    try {
      const keys = deps.streams.keysOf(stream, device);
      const { entries } = await deps.streams.read(keys, from, Math.min(to - from, deps.limits.replayBatch));
      const now = Date.now();
      for (const e of entries) {
        if (e.seq > to) break;
        // Announced in a gap, never delivered (delivery.ts skips these): not acked either.
        if (e.collapsed || e.exp <= now) continue;
        deps.stats.acks++;
        deps.receipts.acked(e.id, { device, stream, seq: e.seq });
      }
    } catch (err) {
      // Counts are statistics: a failed read leaves them short, the cursor has moved.
      deps.log.warn({ conn: this.connId, stream, err: (err as Error).message }, 'ack read failed');
    }
  }

  // ---- subscriptions ----

  /** False, after a `topic_invalid` error frame, for a topic that is not valid. */
  private validTopic(topic: string): boolean {
    if (isValidTopic(topic)) return true;
    this.error(
      FrameError.TopicInvalid,
      'topic must be dot-separated words of A-Z a-z 0-9 _ -, at most 128 characters',
      topic,
    );
    return false;
  }

  protected async subscribe(topic: string, cursor: number | undefined, durable: boolean): Promise<void> {
    const { deps } = this;
    const id = this.identity!;
    if (!this.validTopic(topic)) return;
    if (!topicAllowed(id.topics, topic)) {
      this.error(FrameError.TopicForbidden, `token does not allow topic ${topic}`, topic);
      return;
    }
    const name = topicStream(topic);
    const existing = this.topics?.get(name);
    if (existing) {
      this.send({ type: 'subscribed', topic, cursor: existing.sent });
      return;
    }
    if (this.topicCount >= deps.limits.maxTopics) {
      this.error(FrameError.TooManyTopics, `at most ${deps.limits.maxTopics} topics per connection`, topic);
      return;
    }
    if (durable) await deps.devices.subscribe(id.device, topic);
    // Subscribed to the doorbell before the stream is read: nothing falls between the two.
    await deps.topics.ref(topic);
    const keys = deps.streams.keysOf(name, id.device);
    // The head is read before `subscribed` (with the stored cursor, in one round trip): a cursor
    // past it is a reset (Delivery.resetIfAhead), and what is published once the client has
    // `subscribed` is after it.
    const known = this.serverCursors[name];
    const [head, read] = await Promise.all([
      deps.streams.head(keys),
      known === undefined ? deps.devices.cursor(id.device, name) : undefined,
    ]);
    let stored = known ?? read;
    let start = cursor ?? stored;
    if (start === undefined) {
      start = head;
      await deps.devices.initCursor(id.device, name, start);
      stored = start;
    }
    if (this.closed || this.topics?.has(name)) {
      deps.topics.unref(topic);
      return;
    }
    const st = new StreamState(name, start, stored);
    this.topicMap().set(name, st);
    deps.registry.join(name, this);
    this.send({ type: 'subscribed', topic, cursor: start });
    this.resetIfAhead(st, head);
    void this.sync(st);
  }

  protected async unsubscribe(topic: string, durable: boolean): Promise<void> {
    if (!this.validTopic(topic)) return;
    const name = topicStream(topic);
    if (durable) await this.deps.devices.unsubscribe(this.identity!.device, topic);
    if (this.topics?.delete(name)) {
      if (this.topics.size === 0) this.topics = undefined;
      this.deps.registry.leave(name, this);
      this.deps.topics.unref(topic);
    }
    if (this.serverCursors[name] !== undefined) {
      const { [name]: _, ...rest } = this.serverCursors;
      this.serverCursors = rest;
    }
    this.send({ type: 'unsubscribed', topic });
  }
}
