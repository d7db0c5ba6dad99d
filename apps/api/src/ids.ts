import { randomFillSync } from 'node:crypto';

/** Random bytes drawn 4 KiB at a time: one call into OpenSSL per 256 ids instead of one per id. */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** A fresh 16-byte buffer of random bytes (copied out of the pool: callers may keep it). */
function randomBlock(): Buffer {
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += 16;
  return Buffer.from(pool.subarray(poolAt - 16, poolAt));
}

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix ms time, then random bits. Ids sort by creation time, which
 * keeps logs and status keys easy to read, and still never collide across API instances.
 */
export function notificationId(now = Date.now()): string {
  const b = randomBlock();
  b.writeUIntBE(now, 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
