import type { Subscriber } from '@herald/store';
import type { Logger } from 'pino';
import type { Listener } from './ports.js';

/** What a doorbell channel leads to: the broker of the app that owns it. */
export type BellHandler = (message: string) => void;

/**
 * The node's one pub/sub subscriber, shared by the apps: each app's broker (broker.ts) routes
 * its channels here (node, broadcast and topic channels under the app's prefix), and a doorbell
 * goes to the handler of its channel: one map lookup per doorbell, whatever the number of apps.
 * After a Redis reconnect every session of the node re-reads its streams, once.
 */
export class Bells {
  private readonly routes = new Map<string, BellHandler>();
  private started = false;

  constructor(
    readonly sub: Subscriber,
    /** Every session of the node. */
    private readonly all: ReadonlySet<Listener>,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.sub.onMessage((channel, message) => {
      const h = this.routes.get(channel);
      if (h) h(message);
    });
    // Created before the first SUBSCRIBE, so a reconnect during start-up is not missed.
    this.sub.onResubscribed(
      () => this.resyncAll(),
      (err) => this.log.warn({ err: err.message }, 'resync after reconnect failed'),
    );
    this.started = true;
  }

  /** Routes `channels` to `h` and subscribes them; resolves once Redis confirmed. */
  subscribe(h: BellHandler, ...channels: string[]): Promise<unknown> {
    for (const c of channels) this.routes.set(c, h);
    return this.sub.subscribe(...channels);
  }

  unsubscribe(...channels: string[]): void {
    if (channels.length === 0) return;
    for (const c of channels) this.routes.delete(c);
    this.sub
      .unsubscribe(...channels)
      .catch((err: Error) =>
        this.log.warn({ err: err.message, channels: channels.length }, 'unsubscribe failed'),
      );
  }

  resyncAll(): void {
    if (!this.started) return;
    this.log.info({ clients: this.all.size }, 'resyncing clients from streams');
    for (const c of this.all) c.resync();
  }
}
