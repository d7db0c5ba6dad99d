import { HeraldClient, MemoryCursorStorage } from '@herald/client';
import { mintDeviceToken } from '@herald/token';
import { wsFrom } from '../devices.js';
import { API_KEY, TOKEN_SECRET } from '../system.js';
import type { Accepted, DeviceEvent, DeviceHistory, Unconfirmed } from './checker.js';
import type { Rng } from './rng.js';

export type TransportKind = 'websocket' | 'sse' | 'poll';

/** Bound on one device's history (a campaign emits far fewer; a runaway loop must not eat memory). */
const MAX_EVENTS = 200_000;

/**
 * An SDK device that records, in order, what the SDK emitted to the app and when it was connected.
 * Its cursors live in a storage that outlives the client, so `restart()` is an app restart with
 * durable cursors (docs/guarantees.md: then duplicates are caught by cursor only).
 */
export class ChaosDevice {
  readonly events: DeviceEvent[] = [];
  client: HeraldClient;
  readonly errors: string[] = [];
  restarts = 0;
  /** The node delivers the device's topic (in a welcome's streams, or a `subscribed`). */
  subscribed = false;
  private readonly seenIds = new Set<string>();
  private readonly storage = new MemoryCursorStorage();

  constructor(
    readonly device: string,
    readonly user: string,
    readonly transport: TransportKind,
    readonly topic: string,
    private readonly url: string,
    private readonly localAddress: string,
  ) {
    this.client = this.newClient();
  }

  private newClient(): HeraldClient {
    const { device, user } = this;
    const client = new HeraldClient({
      url: this.url,
      transport: this.transport,
      token: () => mintDeviceToken({ secret: TOKEN_SECRET, device, user }),
      topics: [this.topic],
      storage: this.storage,
      WebSocket: wsFrom(this.localAddress),
      backoff: { initialMs: 100, maxMs: 2000 },
      // WebSocket and long-poll: a silent node is dropped within 6 s (pollWaitS becomes 3). SSE keeps
      // the default 15 + 5 s, since the node's SSE heartbeat comes every 15 s and is not configurable.
      ...(this.transport !== 'sse' ? { pingIdleMs: 4000, pongTimeoutMs: 2000 } : {}),
    });
    client.on('notification', (n) => {
      const data = n.data as { k?: unknown } | null;
      this.record({
        t: 'note',
        at: performance.now(),
        stream: n.stream,
        seq: n.seq,
        id: n.id,
        key: typeof data?.k === 'string' ? data.k : undefined,
      });
      this.seenIds.add(n.id);
    });
    client.on('welcome', (w) => {
      if (`topic:${this.topic}` in w.streams) this.subscribed = true;
    });
    client.on('subscribed', (f) => {
      if (f.topic === this.topic) this.subscribed = true;
    });
    client.on('gap', (g) =>
      this.record({
        t: 'gap',
        at: performance.now(),
        stream: g.stream,
        after: g.after,
        next: g.next,
        reason: g.reason,
      }),
    );
    client.on('state', (s) => this.record({ t: s === 'open' ? 'open' : 'down', at: performance.now() }));
    client.on('error', (e) => {
      if (this.errors.length < 100) this.errors.push(`${e.code}${e.fatal ? ' (fatal)' : ''}: ${e.message}`);
    });
    return client;
  }

  /** The app closes its client and, after `pauseMs`, starts a new one from the stored cursors. */
  async restart(pauseMs: number): Promise<void> {
    await this.client.close();
    this.restarts++;
    await sleep(pauseMs);
    this.client = this.newClient();
    await this.client.connect();
  }

  private record(e: DeviceEvent): void {
    if (this.events.length < MAX_EVENTS) this.events.push(e);
  }

  has(id: string): boolean {
    return this.seenIds.has(id);
  }

  history(): DeviceHistory {
    return { device: this.device, transport: this.transport, events: this.events };
  }
}

export interface PublishTarget {
  to: Record<string, unknown>;
  stream: string;
  targets: string[];
  direct: boolean;
}

/**
 * A publisher as docs/api.md tells users to write one: one publish at a time, each with its own
 * Idempotency-Key, retried with the same key on 503, 409 HERALD_IDEMPOTENCY_IN_PROGRESS and network
 * errors (capped backoff), for at most `giveUpMs`; then its outcome is unknown (unconfirmed).
 */
export class Publisher {
  readonly accepted: Accepted[] = [];
  readonly unconfirmed: Unconfirmed[] = [];
  /** Answers other than 202 / 503 / 409-in-progress: a bug, reported by the campaign. */
  readonly refused: string[] = [];
  retries = 0;
  private n = 0;
  private stopped = false;

  constructor(
    readonly index: number,
    private readonly apiUrl: string,
    private readonly rng: Rng,
    private readonly pickTarget: (rng: Rng) => PublishTarget,
    private readonly opts: {
      minGapMs: number;
      maxGapMs: number;
      giveUpMs: number;
      ttlS: number;
      maxPublishes: number;
    },
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /** Publishes until stop() (finishing the publish in hand) or maxPublishes. */
  async run(): Promise<void> {
    while (!this.stopped && this.n < this.opts.maxPublishes) {
      await this.publishOne();
      await sleep(this.rng.int(this.opts.minGapMs, this.opts.maxGapMs));
    }
  }

  private async publishOne(): Promise<void> {
    const n = this.n++;
    const key = `chaos-p${this.index}-${n}`;
    const t = this.pickTarget(this.rng);
    const body = JSON.stringify({ to: t.to, data: { k: key, p: this.index, n }, ttl: this.opts.ttlS });
    const sentAt = performance.now();
    const deadline = sentAt + this.opts.giveUpMs;
    let delayMs = 100;
    for (;;) {
      let status = 0;
      let json: { id?: string; code?: string } = {};
      try {
        const res = await fetch(`${this.apiUrl}/v1/notifications`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${API_KEY}`,
            'content-type': 'application/json',
            'idempotency-key': key,
          },
          body,
          signal: AbortSignal.timeout(5000),
        });
        status = res.status;
        json = (await res.json().catch(() => ({}))) as typeof json;
      } catch {
        status = 0; // refused, reset, timed out: retry with the same key
      }
      if (status === 202 && typeof json.id === 'string') {
        this.accepted.push({
          id: json.id,
          key,
          publisher: this.index,
          n,
          stream: t.stream,
          targets: t.targets,
          direct: t.direct,
          sentAt,
          acceptedAt: performance.now(),
        });
        return;
      }
      const retriable =
        status === 0 || status === 503 || (status === 409 && json.code === 'HERALD_IDEMPOTENCY_IN_PROGRESS');
      if (!retriable) {
        if (this.refused.length < 100) this.refused.push(`${key}: HTTP ${status} ${JSON.stringify(json)}`);
        this.unconfirmed.push({ key, targets: t.targets });
        return;
      }
      if (performance.now() + delayMs > deadline) {
        this.unconfirmed.push({ key, targets: t.targets });
        return;
      }
      this.retries++;
      await sleep(delayMs);
      delayMs = Math.min(1000, delayMs * 2);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
