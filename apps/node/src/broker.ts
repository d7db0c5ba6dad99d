import { BROADCAST, encodeNotification, TOPIC_PREFIX } from '@herald/protocol';
import { decodeDoorbell, type Keys } from '@herald/store';
import type { Logger } from 'pino';
import type { Bells } from './bells.js';
import type { Audience, Listener, TopicBells } from './ports.js';
import { SharedFrame } from './transport.js';

/**
 * Doorbells from Redis pub/sub to the local clients of one app. The node subscribes, for each
 * app, to its own channel (inbox entries for its devices), the broadcast channel, and each topic
 * channel while at least one local client of the app holds the topic; the channels carry the
 * app's prefix (keys.ts), so the app's hub only ever sees its own devices and topics. Pub/sub is
 * only a doorbell: after a Redis reconnect every client re-reads its streams (bells.ts), since
 * doorbells sent meanwhile are gone.
 */
export class Broker implements TopicBells {
  private readonly refs = new Map<string, { n: number; ready: Promise<unknown> }>();
  private readonly onBell = (message: string): void => this.dispatch(message);

  constructor(
    private readonly bells: Bells,
    private readonly keys: Keys,
    private readonly nodeId: string,
    private readonly hub: Audience,
    private readonly log: Logger,
  ) {}

  /** Subscribes the app's node and broadcast channels. */
  async start(): Promise<void> {
    await this.bells.subscribe(this.onBell, this.keys.nodeChannel(this.nodeId), this.keys.broadcastChannel());
  }

  /** Unsubscribes every channel of the app (the app was removed). */
  stop(): void {
    const chans = [this.keys.nodeChannel(this.nodeId), this.keys.broadcastChannel(), ...this.refs.keys()];
    this.refs.clear();
    this.bells.unsubscribe(...chans);
  }

  /** Subscribes to a topic's doorbell; resolves once Redis confirmed, so a read after it misses nothing. */
  ref(topic: string): Promise<unknown> {
    const ch = this.keys.topicChannel(topic);
    const r = this.refs.get(ch);
    if (r) {
      r.n++;
      return r.ready;
    }
    const ready = this.bells.subscribe(this.onBell, ch);
    this.refs.set(ch, { n: 1, ready });
    return ready;
  }

  unref(topic: string): void {
    const ch = this.keys.topicChannel(topic);
    const r = this.refs.get(ch);
    if (!r) return;
    if (--r.n > 0) return;
    this.refs.delete(ch);
    this.bells.unsubscribe(ch);
  }

  topicCount(): number {
    return this.refs.size;
  }

  private dispatch(message: string): void {
    const bell = decodeDoorbell(message);
    if (!bell) {
      this.log.warn('undecodable doorbell dropped');
      return;
    }
    switch (bell.k) {
      case 'inbox': {
        for (const [device, seq] of bell.to) {
          const clients = this.hub.deviceClients(device);
          if (!clients) continue;
          // One frame per device, shared by the device's sessions.
          const { id, ts, data, priority } = bell.entry;
          const frame = encodeNotification('"inbox"', seq, id, ts, data, priority);
          if (clients instanceof Set) for (const c of clients) c.offer('inbox', seq, bell.entry, frame);
          else (clients as Listener).offer('inbox', seq, bell.entry, frame);
        }
        return;
      }
      case 'stream': {
        if (bell.stream !== BROADCAST && !bell.stream.startsWith(TOPIC_PREFIX)) return;
        const clients = this.hub.streamClients(bell.stream);
        if (!clients) return;
        // Encoded once for every local subscriber (and its wire encoding once per transport kind).
        const frame = new SharedFrame(
          encodeNotification(
            JSON.stringify(bell.stream),
            bell.seq,
            bell.entry.id,
            bell.entry.ts,
            bell.entry.data,
            bell.entry.priority,
          ),
        );
        for (const c of clients) c.offer(bell.stream, bell.seq, bell.entry, frame);
        return;
      }
      case 'sub':
      case 'unsub': {
        const clients = this.hub.deviceClients(bell.device);
        if (clients instanceof Set) for (const c of clients) c.control(bell.k, bell.topic);
        else (clients as Listener | undefined)?.control(bell.k, bell.topic);
        return;
      }
    }
  }
}
