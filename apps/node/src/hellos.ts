import { randomUUID } from 'node:crypto';
import type {
  Devices,
  HelloSession,
  Keys,
  Presence,
  PresenceTransport,
  PresentDevice,
  Streams,
  WebhookEvent,
  WebhookOutbox,
} from '@herald/store';

export interface Hello extends HelloSession {
  /** Broadcast stream head, read after the presence writes of the same batch. */
  broadcastHead: number;
}

interface Pending {
  device: string;
  user: string;
  address: string;
  transport: PresenceTransport;
  resolve(h: Hello): void;
  reject(err: Error): void;
}

/** What a closing session tells of its device: its user, transport and the topics it read. */
export interface Leaving {
  user?: string;
  transport?: PresenceTransport;
  topics?: readonly string[];
}

/**
 * Where the raw `device.connect` / `device.disconnect` events of an app go (events.ts), or
 * undefined while the app wants neither `device.online` nor `device.offline` (asked per flush,
 * so a config reload takes effect at once).
 */
export type RawEventSink = () => WebhookOutbox | undefined;

/** Most topics of one device put in the online sets per hello (NodeLimits.maxTopics bounds it anyway). */
const MAX_TOPICS_ONLINE = 1000;

/**
 * Gathers the hellos that arrive in one turn of the event loop (a connect storm brings many per
 * socket read phase) and sends their Redis work together: one script per device, one SADD per
 * user and for all devices, and one GET of the broadcast head for the whole batch, in one
 * auto-pipelined write instead of several writes per hello. The replies come back together, so
 * the hellos go on in step and their next commands (reads, if any) are pipelined as well.
 * Presence removals of closed sockets are gathered the same way, and so are the topics each
 * welcomed session joined (their online sets, presence.ts) and the raw connect/disconnect events
 * of an app that wants device webhooks: one XADD per turn, in the same auto-pipelined write.
 */
export class Hellos {
  private queue: Pending[] = [];
  /** Devices whose last connection here closed: their presence on this node goes, batched too. */
  private gone: PresentDevice[] = [];
  /** Raw events of this turn (closes), sent with the turn's writes. */
  private events: WebhookEvent[] = [];
  /** Devices that joined topics this turn (welcomed sessions). */
  private joined: PresentDevice[] = [];
  private goneDone: { promise: Promise<void>; resolve(): void; reject(err: Error): void } | undefined;
  private scheduled = false;

  constructor(
    private readonly devices: Devices,
    private readonly presence: Presence,
    private readonly streams: Streams,
    private readonly keys: Keys,
    private readonly nodeId: string,
    private readonly presenceTtlMs: number,
    private readonly rawEvents: RawEventSink = () => undefined,
  ) {}

  open(
    device: string,
    user: string,
    address: string,
    transport: PresenceTransport = 'websocket',
  ): Promise<Hello> {
    return new Promise((resolve, reject) => {
      this.queue.push({ device, user, address, transport, resolve, reject });
      this.schedule();
    });
  }

  /** A welcomed session's topics: the device goes into their online sets with this turn's writes. */
  join(device: string, topics: readonly string[]): void {
    if (topics.length === 0) return;
    this.joined.push({ device, topics: topics.slice(0, MAX_TOPICS_ONLINE) });
    this.schedule();
  }

  /**
   * Removes this node from the device's presence, with the other removals of this turn (a
   * disconnect storm is one write, not one per socket). Removals are sent before the hellos of
   * the same turn: a device that closed and said hello again here ends up present.
   */
  close(device: string, leaving: Leaving = {}): Promise<void> {
    if (!this.goneDone) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.goneDone = { promise, resolve, reject };
    }
    this.gone.push({ device, topics: leaving.topics?.slice(0, MAX_TOPICS_ONLINE) });
    if (this.rawEvents())
      this.events.push(raw('device.disconnect', device, leaving.user, this.nodeId, leaving.transport));
    this.schedule();
    return this.goneDone.promise;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.joined.length > 0) {
      const joined = this.joined;
      this.joined = [];
      // Before the removals of this turn: a session welcomed and closed within one turn leaves
      // no member behind. A failed write is made good by the next heartbeat.
      this.presence.joinTopics(joined).catch(() => undefined);
    }
    const done = this.goneDone;
    if (done) {
      const gone = this.gone;
      this.gone = [];
      this.goneDone = undefined;
      this.presence.removeMany(gone, this.nodeId).then(done.resolve, done.reject);
    }
    const batch = this.queue;
    this.queue = [];
    const outbox = this.rawEvents();
    if (outbox)
      for (const p of batch)
        this.events.push(raw('device.connect', p.device, p.user, this.nodeId, p.transport));
    const sessions =
      batch.length > 0 ? this.devices.connect(batch, this.nodeId, this.presenceTtlMs) : undefined;
    // Issued in this order on one connection: presence is written before the head is read.
    const head = sessions ? this.streams.heads([this.keys.broadcast()]) : undefined;
    if (this.events.length > 0) {
      const events = this.events;
      this.events = [];
      // After the presence writes of this turn, in the same auto-pipelined write: one XADD (per
      // 500 events), no round trip of its own. A lost event is a missed webhook, never a wrong
      // presence (the API reads presence itself).
      outbox?.append(events).catch(() => undefined);
    }
    if (!sessions || !head) return;
    Promise.all([sessions, head]).then(
      ([s, [broadcastHead]]) => {
        for (let i = 0; i < batch.length; i++)
          batch[i]!.resolve({ ...s[i]!, broadcastHead: broadcastHead ?? 0 });
      },
      (err: Error) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}

function raw(
  type: 'device.connect' | 'device.disconnect',
  device: string,
  user: string | undefined,
  node: string,
  transport: PresenceTransport | undefined,
): WebhookEvent {
  const data: Record<string, unknown> = { device, node };
  if (user !== undefined) data.user = user;
  if (transport !== undefined) data.transport = transport;
  return { id: randomUUID(), type, ts: Date.now(), data };
}
