/**
 * Every Redis key and channel name Herald uses, in one place. Keys that a Lua script touches
 * together share a hash tag ({...}) so they live in one Redis Cluster slot.
 */
export interface StreamKeys {
  /** Redis stream of entries; entry id is `<seq>-0`. */
  stream: string;
  /** Counter holding the stream's head seq. */
  seq: string;
}

export class Keys {
  constructor(readonly prefix = 'herald') {}

  inbox(device: string): StreamKeys {
    const tag = `${this.prefix}:{d:${device}}`;
    return { stream: `${tag}:inbox`, seq: `${tag}:seq` };
  }
  /** Hash nodeId -> expiry ms of the device's live connections. */
  presence(device: string): string {
    return `${this.prefix}:{d:${device}}:presence`;
  }
  /** Hash nodeId -> client address of the device's connection on that node (real address via PROXY protocol). */
  presenceAddr(device: string): string {
    return `${this.prefix}:{d:${device}}:addr`;
  }
  /** Hash stream name -> last acked seq. */
  cursors(device: string): string {
    return `${this.prefix}:{d:${device}}:cursors`;
  }
  /** Set of topics the device is subscribed to (durable, survives reconnects). */
  deviceTopics(device: string): string {
    return `${this.prefix}:{d:${device}}:topics`;
  }
  /** Set of the user's device ids. */
  userDevices(user: string): string {
    return `${this.prefix}:{u:${user}}:devices`;
  }
  topic(topic: string): StreamKeys {
    const tag = `${this.prefix}:{t:${topic}}`;
    return { stream: `${tag}:stream`, seq: `${tag}:seq` };
  }
  /** Set of devices subscribed to the topic; its size is the topic's target count. */
  topicMembers(topic: string): string {
    return `${this.prefix}:{t:${topic}}:members`;
  }
  /**
   * A key in the slot of a topic or broadcast stream that is never written: append.lua's presence
   * hash for a stream that has none.
   */
  noPresence(k: StreamKeys): string {
    return `${k.stream}:nopresence`;
  }
  broadcast(): StreamKeys {
    const tag = `${this.prefix}:{b}`;
    return { stream: `${tag}:stream`, seq: `${tag}:seq` };
  }
  /** Set of every device that ever said hello (within retention): broadcast's target count. */
  allDevices(): string {
    return `${this.prefix}:{b}:devices`;
  }
  status(id: string): string {
    return `${this.prefix}:{n:${id}}:status`;
  }
  idempotency(apiKeyId: string, key: string): string {
    return `${this.prefix}:{i:${apiKeyId}:${key}}:idem`;
  }
  /** Sorted set nodeId -> last heartbeat ms. */
  nodes(): string {
    return `${this.prefix}:{nodes}`;
  }
  /** Hash nodeId -> connection count at its last heartbeat (same slot as nodes()). */
  nodeConnections(): string {
    return `${this.prefix}:{nodes}:connections`;
  }
  /** BullMQ prefix; the braces keep each queue's keys in one cluster slot. */
  queuePrefix(): string {
    return `{${this.prefix}:q}`;
  }

  // ---- pub/sub doorbell channels ----
  nodeChannel(nodeId: string): string {
    return `${this.nodeChannelPrefix()}${nodeId}`;
  }
  /** What every node channel starts with (a script appends the node id). */
  nodeChannelPrefix(): string {
    return `${this.prefix}:bell:node:`;
  }
  topicChannel(topic: string): string {
    return `${this.prefix}:bell:topic:${topic}`;
  }
  broadcastChannel(): string {
    return `${this.prefix}:bell:broadcast`;
  }

  // ---- Web Push (issue #16, docs/webpush.md) ----
  /**
   * Hash subscription id -> JSON {endpoint, keys, createdAt}: the device's Web Push
   * subscriptions, in the device's slot so one script reads them with its cursors.
   */
  webpush(device: string): string {
    return `${this.prefix}:{d:${device}}:webpush`;
  }
}
