import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@herald/config';
import { ID_RE } from '@herald/protocol';
import { type DevicePresence, type Keys, PAGE_CURSOR, Presence, type RedisClient } from '@herald/store';
import { BadRequest } from '../errors.js';
import { AdminDeviceParams, AdminTopicParams, errorResponses } from '../schemas.js';

export interface PresenceRoutesOptions {
  redis: RedisClient;
  /** The info hash's lifetime (only read here): the device retention. */
  deviceRetentionMs: number;
}

/** Most devices of a user in one page (each is two small reads, auto-pipelined). */
export const MAX_USER_PAGE = 100;
/** Most online members of a topic in one page (ids only: one ZSCAN of about that many). */
export const MAX_TOPIC_PAGE = 1000;

const Cursor = Type.String({
  pattern: PAGE_CURSOR.source,
  description: 'The `cursor` of the previous page; leave it out for the first.',
});
/**
 * The API validates without coercion (app.ts), so `limit` is a string of digits here, read by
 * `limitOf` with its range.
 */
const pageQuery = (max: number, def: number) =>
  Type.Object(
    {
      cursor: Type.Optional(Cursor),
      limit: Type.Optional(
        Type.String({
          pattern: '^[0-9]{1,7}$',
          description: `Most items in the page: 1 to ${max} (default ${def}).`,
        }),
      ),
    },
    { additionalProperties: false },
  );

function limitOf(limit: string | undefined, max: number, def: number): number {
  if (limit === undefined) return def;
  const n = Number(limit);
  if (!(n >= 1 && n <= max)) throw new BadRequest(`limit must be 1 to ${max}`);
  return n;
}
const NextCursor = Type.Union([Type.String(), Type.Null()], {
  description: 'Pass as `cursor` for the next page; null when this was the last.',
});
const Transport = Type.Enum({ websocket: 'websocket', sse: 'sse', poll: 'poll' });
const Time = Type.String({ format: 'date-time' });

export const DevicePresenceView = Type.Object(
  {
    device: Type.String(),
    online: Type.Boolean({ description: 'Connected to some node now.' }),
    node: Type.Union([Type.String(), Type.Null()], { description: 'Node of its latest connection.' }),
    nodes: Type.Array(
      Type.Object({ id: Type.String(), since: Time, transport: Transport }, { additionalProperties: false }),
      { description: 'Its live connections, one per node, oldest first.' },
    ),
    since: Type.Union([Time, Type.Null()], { description: 'When its oldest live connection was made.' }),
    transport: Type.Union([Transport, Type.Null()], { description: 'Transport of its latest connection.' }),
    lastSeen: Type.Union([Time, Type.Null()], {
      description:
        'Now when online; else its last disconnect (or last hello, if its node died), null when not seen within the device retention.',
    }),
  },
  { description: "A device's presence." },
);

const UserParams = Type.Object({ user: Type.String({ pattern: ID_RE.source }) });
const UserDevicesView = Type.Object(
  { user: Type.String(), devices: Type.Array(DevicePresenceView), cursor: NextCursor },
  {
    description: "A page of the user's devices (known within the device retention), each with its presence.",
  },
);
const TopicPresenceView = Type.Object(
  {
    topic: Type.String(),
    count: Type.Integer({ description: 'Members connected now.' }),
    devices: Type.Array(Type.String(), { description: 'A page of the members connected now.' }),
    cursor: NextCursor,
  },
  { description: "A topic's online members: their count, and a page of them." },
);

function view(p: DevicePresence, now: number): Static<typeof DevicePresenceView> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const latest = p.nodes.at(-1);
  return {
    device: p.device,
    online: p.online,
    node: latest?.id ?? null,
    nodes: p.nodes.map((n) => ({ id: n.id, since: iso(n.since), transport: n.transport })),
    since: p.since === undefined ? null : iso(p.since),
    transport: latest?.transport ?? null,
    lastSeen: p.online ? iso(now) : p.seen === undefined ? null : iso(p.seen),
  };
}

/**
 * The presence API (docs/api.md, "Presence"): who is connected now, for the app of the
 * request's key, with the `presence:read` scope. Read only: looking never keeps a device
 * alive. Counts are one ZCOUNT of the topic's online set (presence.ts), pages are bounded scans.
 */
export const presenceRoutes: FastifyPluginAsyncTypebox<PresenceRoutesOptions> = async (app, o) => {
  const tags = ['presence'];
  const views = new Map<Keys, Presence>();
  const of = (keys: Keys): Presence => {
    let p = views.get(keys);
    if (!p) {
      // The API only reads presence: its TTL is the nodes'.
      p = new Presence(o.redis, keys, 0, o.deviceRetentionMs);
      views.set(keys, p);
    }
    return p;
  };

  app.get(
    '/devices/:device',
    {
      schema: {
        summary: "A device's presence",
        description:
          'Whether it is connected now, where, since when and over what, and when it was last seen.',
        tags,
        params: AdminDeviceParams,
        response: { 200: DevicePresenceView, ...errorResponses(400, 401, 503) },
      },
    },
    async (req) => {
      const now = Date.now();
      return view(await of(req.tenant.keys).device(req.params.device, now), now);
    },
  );

  app.get(
    '/users/:user/devices',
    {
      schema: {
        summary: "A user's devices and their presence",
        description: `The user's devices, a page of at most \`limit\` (default 20, at most ${MAX_USER_PAGE}), each with its presence.`,
        tags,
        params: UserParams,
        querystring: pageQuery(MAX_USER_PAGE, 20),
        response: { 200: UserDevicesView, ...errorResponses(400, 401, 503) },
      },
    },
    async (req) => {
      const presence = of(req.tenant.keys);
      const { cursor = '0' } = req.query;
      const limit = limitOf(req.query.limit, MAX_USER_PAGE, 20);
      const page = await presence.userDevicesPage(req.params.user, cursor, limit);
      const now = Date.now();
      const devices = await presence.devices(page.items, now);
      return {
        user: req.params.user,
        devices: devices.map((d) => view(d, now)),
        cursor: page.cursor ?? null,
      };
    },
  );

  app.get(
    '/topics/:topic/presence',
    {
      schema: {
        summary: "A topic's online members",
        description: `How many of the topic's members are connected now, and a page of at most \`limit\` of them (default 100, at most ${MAX_TOPIC_PAGE}).`,
        tags,
        params: AdminTopicParams,
        querystring: pageQuery(MAX_TOPIC_PAGE, 100),
        response: { 200: TopicPresenceView, ...errorResponses(400, 401, 503) },
      },
    },
    async (req) => {
      const presence = of(req.tenant.keys);
      const { cursor = '0' } = req.query;
      const limit = limitOf(req.query.limit, MAX_TOPIC_PAGE, 100);
      const now = Date.now();
      const [count, page] = await Promise.all([
        presence.topicCount(req.params.topic, now),
        presence.topicPage(req.params.topic, cursor, limit, now),
      ]);
      return { topic: req.params.topic, count, devices: page.items, cursor: page.cursor ?? null };
    },
  );
};
