import { BROADCAST, encodeNotification, TOPIC_PREFIX } from '@herald/protocol';
import { decodeDoorbell, type Keys, type Subscriber } from '@herald/store';
import type { Logger } from 'pino';
import type { Audience, Listener, TopicBells } from './ports.js';
import { SharedFrame } from './transport.js';

/**
 * Doorbells from Redis pub/sub to local clients. The node subscribes to its own channel (inbox
 * entries for its devices), the broadcast channel, and each topic channel while at least one
 * local client holds the topic. Pub/sub is only a doorbell: after a Redis reconnect every client
 * re-reads its streams, since doorbells sent meanwhile are gone.
 */
export class Broker implements TopicBells {
  private readonly refs = new Map<string, { n: number; ready: Promise<unknown> }>();
  private started = false;

  constructor(
    private readonly sub: Subscriber,
    private readonly keys: Keys,
    private readonly nodeId: string,
    private readonly hub: Audience,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.sub.onMessage((channel, message) => this.dispatch(channel, message));
    // Created before the first SUBSCRIBE, so a reconnect during start-up is not missed.
    this.sub.onResubscribed(
      () => this.resyncAll(),
      (err) => this.log.warn({ err: err.message }, 'resync after reconnect failed'),
    );
    await this.sub.subscribe(this.keys.nodeChannel(this.nodeId), this.keys.broadcastChannel());
    this.started = true;
  }

  /** Subscribes to a topic's doorbell; resolves once Redis confirmed, so a read after it misses nothing. */
  ref(topic: string): Promise<unknown> {
    const ch = this.keys.topicChannel(topic);
    const r = this.refs.get(ch);
    if (r) {
      r.n++;
      return r.ready;
    }
    const ready = this.sub.subscribe(ch);
    this.refs.set(ch, { n: 1, ready });
    return ready;
  }

  unref(topic: string): void {
    const ch = this.keys.topicChannel(topic);
    const r = this.refs.get(ch);
    if (!r) return;
    if (--r.n > 0) return;
    this.refs.delete(ch);
    this.sub
      .unsubscribe(ch)
      .catch((err: Error) => this.log.warn({ err: err.message, ch }, 'unsubscribe failed'));
  }

  topicCount(): number {
    return this.refs.size;
  }

  resyncAll(): void {
    if (!this.started) return;
    this.log.info({ clients: this.hub.size }, 'resyncing clients from streams');
    for (const c of this.hub.connections) c.resync();
  }

  private dispatch(_channel: string, message: string): void {
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
          const frame = encodeNotification('"inbox"', seq, bell.entry.id, bell.entry.ts, bell.entry.data);
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
