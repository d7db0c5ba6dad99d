import type { Devices, HelloSession, Keys, Streams } from '@herald/store';

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
 */
export class Hellos {
  private queue: Pending[] = [];

  constructor(
    private readonly devices: Devices,
    private readonly streams: Streams,
    private readonly keys: Keys,
    private readonly nodeId: string,
    private readonly presenceTtlMs: number,
  ) {}

  open(device: string, user: string, address: string): Promise<Hello> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ device, user, address, resolve, reject });
    });
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
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
