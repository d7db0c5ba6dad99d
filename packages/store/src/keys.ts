/**
 * Every Redis key and channel name Herald uses, in one place. Keys that a Lua script touches
 * together share a hash tag ({...}) so they live in one Redis Cluster slot.
 *
 * Apps (docs/tenancy.md): every app has its own `Keys`, from `keys.forApp(appId)`. The app
 * `default` is the deployment's Keys itself, so a single-app deployment keeps exactly the keys
 * it always had (no migration). Any other app's keys are the same keys under the prefix
 * `${prefix}:a:${appId}` (`herald:a:shop:{d:dev1}:inbox`), and so are its doorbell channels
 * (`herald:a:shop:bell:node:<node>`): two apps with the same device, user or topic name never
 * share a key or a channel. The prefix sits before the hash tag and the tag is unchanged, so an
 * app's key lands in the same kind of slot as before (per device, user, topic, notification) and
 * every script's keys still share one slot. Keys of the deployment rather than of an app stay
 * under the root prefix whichever app's Keys builds them: the node registry (`nodes`,
 * `nodeConnections`), the BullMQ queue prefix and the replica barrier. An app's connection
 * counts (`appConnections`) carry the `{nodes}` tag, so one script sums them beside the node
 * registry.
 */
export interface StreamKeys {
  /** Redis stream of entries; entry id is `<seq>-0`. */
  stream: string;
  /** Counter holding the stream's head seq. */
  seq: string;
}

/** The app whose keys are the deployment's own (today's keys, unprefixed by an app). */
export const DEFAULT_APP = 'default';

/** What an app id may be (docs/tenancy.md); checked before it goes into a key. */
export const APP_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

export class Keys {
  /** The Keys of the deployment (app `default`), which holds the other apps' Keys. */
  private readonly base: Keys;
  private readonly apps: Map<string, Keys> | undefined;

  /**
   * `prefix`: the deployment's prefix (HERALD_REDIS_PREFIX). `app` is for `forApp` only: the
   * app's id, its keys then living under `${prefix}:a:${app}`.
   */
  constructor(
    readonly root = 'herald',
    private readonly app?: { id: string; base: Keys },
  ) {
    this.base = app?.base ?? this;
    this.apps = app ? undefined : new Map();
    this.prefix = app ? `${root}:a:${app.id}` : root;
  }

  /** Prefix of this app's keys (the root prefix for the app `default`). */
  readonly prefix: string;

  /** The app these keys belong to. */
  get appId(): string {
    return this.app?.id ?? DEFAULT_APP;
  }

  /** The Keys of an app (one object per app id, cached); `default` is the deployment's Keys. */
  forApp(appId: string): Keys {
    const base = this.base;
    if (appId === DEFAULT_APP) return base;
    let k = base.apps?.get(appId);
    if (k) return k;
    if (!APP_ID.test(appId)) throw new Error(`invalid app id ${JSON.stringify(appId.slice(0, 40))}`);
    k = new Keys(base.root, { id: appId, base });
    base.apps?.set(appId, k);
    return k;
  }

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
  /**
   * Hash of what the presence API shows of a device (presence.ts): nodeId -> `<since ms>|<transport>`
   * of its connection on that node, and `seen` -> ms of its last hello or disconnect. Written by
   * hello.lua and the node's presence removal; lives the device retention.
   */
  presenceInfo(device: string): string {
    return `${this.prefix}:{d:${device}}:pinfo`;
  }
  /**
   * Sorted set device -> presence expiry ms of the topic's members connected now (presence.ts):
   * ZCOUNT from now is the online count, ZSCAN pages it. In the topic's slot.
   */
  topicOnline(topic: string): string {
    return `${this.prefix}:{t:${topic}}:online`;
  }
  /**
   * The presence debouncer's state (worker presence/), beside the app's outbox (`{wh}`): hash
   * device -> `on` of devices announced online, and a sorted set device -> due ms of devices
   * that disconnected and are announced offline at that time unless they come back.
   */
  presenceAnnounced(): string {
    return `${this.prefix}:{wh}:presence:on`;
  }
  presenceDue(): string {
    return `${this.prefix}:{wh}:presence:due`;
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
  /**
   * A key in a stream's slot that a reader writes (SET PX, gone within a second) just before it
   * WAITs for the replicas, on a Redis Cluster: WAIT covers only the connection's own writes.
   */
  readBarrier(k: StreamKeys): string {
    return `${k.stream}:rb`;
  }
  /**
   * In a stream's slot: the seq a fan-out step appended notification `id` at (lib/append.lua),
   * so a step run again appends nothing. Kept up to 15 minutes (the queue's retry schedule).
   */
  appendMark(k: StreamKeys, id: string): string {
    return `${k.stream}:m:${id}`;
  }
  /**
   * In a stream's slot: hash collapseKey -> seq of the latest entry with that key
   * (lib/append.lua), read by read.lua to tell collapsed entries. Expires with the keyed entries.
   */
  collapse(k: StreamKeys): string {
    return `${k.stream}:ck`;
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
  /** Sorted set nodeId -> last heartbeat ms (global: the same for every app). */
  nodes(): string {
    return `${this.root}:{nodes}`;
  }
  /** Hash nodeId -> connection count at its last heartbeat (same slot as nodes(); global). */
  nodeConnections(): string {
    return `${this.root}:{nodes}:connections`;
  }
  /** Hash nodeId -> this app's connections on that node at its last heartbeat (slot of nodes()). */
  appConnections(): string {
    return `${this.prefix}:{nodes}:app-connections`;
  }
  /** BullMQ prefix; the braces keep each queue's keys in one cluster slot (global). */
  queuePrefix(): string {
    return `{${this.root}:q}`;
  }
  /** Replica barrier key (global). */
  replicaBarrier(): string {
    return `${this.root}:replica-barrier`;
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

  // ---- runtime API keys (api-keys.ts), global: a key is looked up by hash before its app is known ----
  /** Hash of a runtime API key by its sha256 hex: app, id, scopes, createdAt, expiresAt, name. */
  apiKey(sha256: string): string {
    return `${this.root}:{apikeys}:key:${sha256}`;
  }
  /** Hash of an app's runtime API keys, key id -> sha256 hex (listing, revoke by id). Same tag: one MULTI. */
  apiKeyIndex(appId: string): string {
    return `${this.root}:{apikeys}:app:${appId}`;
  }

  // ---- rate limits (apps/api/src/rate-limit.ts): counters of fixed windows, global ----
  /** Namespace of @fastify/rate-limit's Redis store counters (it appends its own key). */
  rateLimitPrefix(): string {
    return `${this.root}:rl:`;
  }
  /** An app's counter of notifications fanned out in the current window. */
  notificationRate(appId: string): string {
    return `${this.root}:rl:n:${appId}`;
  }

  // ---- webhooks (issue #17, docs/webhooks.md) ----
  /**
   * The app's outbox of webhook events (events.ts): a stream whose entries each carry a batch of
   * events, written by nodes (with their flushes) and the worker, read by the worker's consumer
   * groups. One key per app, tagged `{wh}` (all of an app's events in one slot).
   */
  webhookEvents(): string {
    return `${this.prefix}:{wh}:events`;
  }
  /** Zset notification id -> expiry (ms) of the app's notifications whose key wants `notification.expired`. */
  webhookExpiries(): string {
    return `${this.prefix}:{wh}:expiries`;
  }
  /** Hash dead-letter id -> JSON of a webhook request that exhausted its retries (webhooks.ts). */
  webhookDead(): string {
    return `${this.prefix}:{wh}:dead`;
  }
  /** Zset dead-letter id -> failedAt: the order of `webhookDead`, bounded by HERALD_WEBHOOK_DEAD_MAX. */
  webhookDeadOrder(): string {
    return `${this.prefix}:{wh}:dead:order`;
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
