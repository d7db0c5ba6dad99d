import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BROADCAST, INBOX, parseStream, topicStream } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import {
  Devices,
  Inspect,
  type Keys,
  Nodes,
  Presence,
  type StreamLimits,
  Streams,
  WebPushStore,
} from '@herald/store';
import {
  AdminDeviceParams,
  AdminTopicParams,
  DeviceView,
  errorResponses,
  NodeList,
  TopicView,
} from '../schemas.js';

export interface AdminRoutesOptions {
  redis: RedisClient;
  /** The deployment's keys (the node registry is global). */
  keys: Keys;
  streamLimits: StreamLimits;
  deviceRetentionMs: number;
}

/** Nodes whose last heartbeat is older than this are left out of the node list. */
export const NODE_WINDOW_MS = 2 * 60_000;

/** Streams in the order the device view lists them: inbox, broadcast, then topics by name. */
function streamOrder(a: string, b: string): number {
  const rank = (s: string) => (s === INBOX ? 0 : s === BROADCAST ? 1 : 2);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Read-only views of what Redis holds, for operators and support: the node list needs the
 * `admin` scope, a device's or a topic's view `presence:read` (or `admin`), and show the caller's
 * app only. Nothing here writes, so looking at a device never keeps it alive or moves a cursor.
 */
export const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, o) => {
  const nodes = new Nodes(o.redis, o.keys);
  const tags = ['admin'];
  // The views of the caller's app (request.tenant), made once per app: a few small objects.
  const views = new Map<
    Keys,
    { inspect: Inspect; devices: Devices; streams: Streams; presence: Presence; webpush: WebPushStore }
  >();
  const of = (keys: Keys) => {
    let v = views.get(keys);
    if (!v) {
      v = {
        inspect: new Inspect(o.redis, keys),
        devices: new Devices(o.redis, keys, o.deviceRetentionMs),
        streams: new Streams(o.redis, keys, o.streamLimits),
        // The API only reads presence: its TTL is the nodes'.
        presence: new Presence(o.redis, keys, 0),
        // Read only here (the view lists a device's Web Push subscriptions, docs/webpush.md).
        webpush: new WebPushStore(o.redis, keys, { maxPerDevice: 1, retentionMs: 0 }),
      };
      views.set(keys, v);
    }
    return v;
  };

  app.get(
    '/nodes',
    {
      schema: {
        summary: 'Live push nodes',
        description: 'Nodes with a heartbeat in the last 2 minutes, with their connection counts.',
        tags,
        response: { 200: NodeList, ...errorResponses(401, 403, 503) },
      },
    },
    async () => {
      const list = await nodes.list(NODE_WINDOW_MS);
      list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return {
        nodes: list.map((n) => ({
          id: n.id,
          lastSeen: new Date(n.lastSeen).toISOString(),
          connections: n.connections,
        })),
      };
    },
  );

  app.get(
    '/devices/:device',
    {
      schema: {
        summary: 'A device: presence, cursors, topics',
        description:
          'The nodes where the device is connected now (with its client address), its durable topics, and per stream the head and its acked cursor.',
        tags,
        params: AdminDeviceParams,
        response: { 200: DeviceView, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (req) => {
      const { device } = req.params;
      const { inspect, ...v } = of(req.tenant.keys);
      const [registered, live, addresses, topics, cursors, subs] = await Promise.all([
        inspect.registered(device),
        v.presence.nodesOf(device),
        v.presence.addresses(device),
        v.devices.topicsOf(device),
        inspect.cursors(device),
        v.webpush.list(device),
      ]);
      // Every stream the device reads: its inbox, broadcast, its topics, and any other cursor it
      // still has (a name that is not a valid stream is skipped rather than failing the view).
      const names = new Set<string>([INBOX, BROADCAST, ...topics.map((t) => topicStream(t))]);
      for (const s of Object.keys(cursors)) if (parseStream(s)) names.add(s);
      const streams = [...names].sort(streamOrder);
      const heads = await v.streams.heads(streams.map((s) => v.streams.keysOf(s, device)));
      return {
        device,
        registered,
        nodes: live.sort().map((id) => ({ id, address: addresses[id] ?? null })),
        topics: topics.sort(),
        // The endpoint is a capability URL (anyone holding it can push): only its host is shown.
        webpush: subs.map((s) => ({
          id: s.id,
          host: hostOf(s.endpoint),
          createdAt: new Date(s.createdAt).toISOString(),
        })),
        cursors: streams.map((stream, i) => ({
          stream,
          head: heads[i] ?? 0,
          acked: cursors[stream] ?? null,
        })),
      };
    },
  );

  app.get(
    '/topics/:topic',
    {
      schema: {
        summary: 'A topic: subscribers and head',
        description: 'How many devices are durably subscribed, and the last seq of the topic stream.',
        tags,
        params: AdminTopicParams,
        response: { 200: TopicView, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (req) => {
      const { topic } = req.params;
      const v = of(req.tenant.keys);
      const [subscribers, head] = await Promise.all([
        v.devices.topicMemberCount(topic),
        v.streams.head(req.tenant.keys.topic(topic)),
      ]);
      return { topic, subscribers, head };
    },
  );
};

function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).host;
  } catch {
    return '';
  }
}
