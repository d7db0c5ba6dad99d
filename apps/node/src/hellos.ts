import type { Devices, HelloSession, Keys, Presence, Streams } from '@herald/store';

export interface Hello extends HelloSession {
  /** Broadcast stream head, read after the presence writes of the same batch. */
  broadcastHead: number;
}

interface Pending {
  device: string;
  user: string;
  address: string;
  resolve(h: Hello): void;
  reject(err: Error): void;
}

/**
 * Gathers the hellos that arrive in one turn of the event loop (a connect storm brings many per
 * socket read phase) and sends their Redis work together: one script per device, one SADD per
 * user and for all devices, and one GET of the broadcast head for the whole batch, in one
 * auto-pipelined write instead of several writes per hello. The replies come back together, so
 * the hellos go on in step and their next commands (reads, if any) are pipelined as well.
 * Presence removals of closed sockets are gathered the same way.
 */
export class Hellos {
  private queue: Pending[] = [];
  /** Devices whose last connection here closed: their presence on this node goes, batched too. */
  private gone: string[] = [];
  private goneDone: { promise: Promise<void>; resolve(): void; reject(err: Error): void } | undefined;
  private scheduled = false;

  constructor(
    private readonly devices: Devices,
    private readonly presence: Presence,
    private readonly streams: Streams,
    private readonly keys: Keys,
    private readonly nodeId: string,
    private readonly presenceTtlMs: number,
  ) {}

  open(device: string, user: string, address: string): Promise<Hello> {
    return new Promise((resolve, reject) => {
      this.queue.push({ device, user, address, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Removes this node from the device's presence, with the other removals of this turn (a
   * disconnect storm is one write, not one per socket). Removals are sent before the hellos of
   * the same turn: a device that closed and said hello again here ends up present.
   */
  close(device: string): Promise<void> {
    if (!this.goneDone) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.goneDone = { promise, resolve, reject };
    }
    this.gone.push(device);
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
    const done = this.goneDone;
    if (done) {
      const gone = this.gone;
      this.gone = [];
      this.goneDone = undefined;
      this.presence.removeMany(gone, this.nodeId).then(done.resolve, done.reject);
    }
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    // Issued in this order on one connection: presence is written before the head is read.
    const sessions = this.devices.connect(batch, this.nodeId, this.presenceTtlMs);
    const head = this.streams.heads([this.keys.broadcast()]);
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
