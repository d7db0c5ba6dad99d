import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * Read-only looks at a device's stored state, for the admin API and operators. Nothing here
 * writes or refreshes anything, so inspecting a device never keeps it alive.
 */
export class Inspect {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  /** Every acked cursor the device has: wire stream name -> last acked seq. */
  async cursors(device: string): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.keys.cursors(device));
    const out: Record<string, number> = {};
    for (const [stream, seq] of Object.entries(raw)) out[stream] = Number(seq);
    return out;
  }

  /** Whether the device said hello within retention (it is in the broadcast audience). */
  async registered(device: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.allDevices(), device)) === 1;
  }
}
