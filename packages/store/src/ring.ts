import { publish } from './bus.js';
import { encodeDoorbell } from './doorbell.js';
import type { NewEntry } from './entry.js';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';
import type { InboxAppend } from './streams.js';

/**
 * Rings the nodes that hold the devices of one appended chunk: ONE doorbell per node, listing
 * each of its devices with the seq it got, so a node with many of the chunk's devices gets one
 * message rather than one per device. Returns the number of messages published.
 */
export async function ringInboxes(
  publisher: RedisClient,
  keys: Keys,
  entry: NewEntry,
  appended: readonly InboxAppend[],
): Promise<number> {
  const byNode = new Map<string, [device: string, seq: number][]>();
  for (const { device, seq, nodes } of appended) {
    for (const node of nodes) {
      const to = byNode.get(node);
      if (to) to.push([device, seq]);
      else byNode.set(node, [[device, seq]]);
    }
  }
  if (byNode.size === 0) return 0;
  // One round trip however many nodes there are.
  await Promise.all(
    [...byNode].map(([node, to]) =>
      publish(publisher, keys.nodeChannel(node), encodeDoorbell({ k: 'inbox', entry, to })),
    ),
  );
  return byNode.size;
}

/** Rings a shared stream (topic or broadcast) once on its channel; nodes fan out locally. */
export async function ringStream(
  publisher: RedisClient,
  channel: string,
  stream: string,
  seq: number,
  entry: NewEntry,
): Promise<void> {
  await publish(publisher, channel, encodeDoorbell({ k: 'stream', stream, seq, entry }));
}
