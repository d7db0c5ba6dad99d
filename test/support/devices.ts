import { HeraldClient, type NotificationFrame, type WebSocketConstructor } from '@herald/client';
import WebSocket from 'ws';

/** A WebSocket class bound to one loopback source address, so the balancer's hash spreads devices. */
export function wsFrom(localAddress: string): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { localAddress });
    }
  };
}

/** A device as the application sees it: every notification the SDK emits, in emit order. */
export class AppDevice {
  readonly seen: NotificationFrame[] = [];
  readonly client: HeraldClient;
  /** Node of the latest welcome. */
  node: string | undefined;
  readonly subscribed = new Set<string>();
  /** Times (ms) of every disconnect and every welcome. */
  readonly disconnects: number[] = [];
  readonly welcomes: number[] = [];
  private waiters: (() => void)[] = [];

  constructor(
    readonly device: string,
    url: string,
    token: () => Promise<string>,
    localAddress: string,
    topics: string[] = [],
  ) {
    this.client = new HeraldClient({
      url,
      token,
      topics,
      WebSocket: wsFrom(localAddress),
      backoff: { initialMs: 100, maxMs: 2000 },
    });
    this.client.on('notification', (n) => {
      this.seen.push(n);
      this.wake();
    });
    this.client.on('disconnect', () => {
      this.disconnects.push(Date.now());
    });
    this.client.on('welcome', (w) => {
      this.node = w.node;
      this.welcomes.push(Date.now());
      this.wake();
    });
    this.client.on('subscribed', (s) => {
      this.subscribed.add(s.topic);
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  ids(stream?: string): string[] {
    return this.seen.filter((n) => stream === undefined || n.stream === stream).map((n) => n.id);
  }

  /** Waits until `cond` holds (re-checked on each notification), bounded. */
  async until(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`${this.device}: timed out waiting for ${what} (seen ${this.seen.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}
