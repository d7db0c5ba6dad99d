import { type Static, Type } from '@herald/config';
import {
  COLLAPSE_KEY_RE,
  HTTP_ERRORS,
  ID_RE,
  MAX_TARGET_IDS,
  MAX_TOPIC_LENGTH,
  PRIORITIES,
  type Priority,
  PUSH_TOPIC_RE,
  TOPIC_RE,
} from '@herald/protocol';
import type { ApiConfig } from './config.js';

/**
 * Request and response schemas. They come from config (the TTL bound) so they are built once
 * per app; the regexes are protocol's, so API, worker and nodes agree on what a valid id is.
 */

/** Notification ids are UUIDs; anything else that is still safe in a Redis key is a plain 404. */
export const NOTIFICATION_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
/** Printable ASCII, so a key can be logged and stored as is. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x20-\\x7e]{1,200}$';

const Ids = (what: string) =>
  Type.Array(Type.String({ pattern: ID_RE.source }), {
    minItems: 1,
    maxItems: MAX_TARGET_IDS,
    description: `${what} ids (duplicates are ignored)`,
  });

const Topic = Type.String({ pattern: TOPIC_RE.source, maxLength: MAX_TOPIC_LENGTH });

/** `push` of a publish: the Web Push fallback (docs/webpush.md). */
const PushPolicySchema = (cfg: ApiConfig) =>
  Type.Object(
    {
      after: Type.Integer({
        minimum: 0,
        maximum: cfg.ttlMaxS,
        description: 'Seconds without an ack before the push; 0: push at once as well as live.',
      }),
      title: Type.Optional(
        Type.String({ maxLength: 256, description: 'Notification title the service worker shows.' }),
      ),
      body: Type.Optional(
        Type.String({ maxLength: 1024, description: 'Notification text the service worker shows.' }),
      ),
      urgency: Type.Optional(
        Type.Union(
          ['very-low', 'low', 'normal', 'high'].map((u) => Type.Literal(u)),
          {
            description: 'Web Push Urgency (RFC 8030 5.3).',
          },
        ),
      ),
      topic: Type.Optional(
        Type.String({
          pattern: PUSH_TOPIC_RE.source,
          description: 'Web Push Topic (collapse key, RFC 8030 5.4): 1 to 32 of A-Z a-z 0-9 _ -.',
        }),
      ),
      payload: Type.Optional(Type.Unknown({ description: "Sent instead of the notification's data." })),
    },
    {
      additionalProperties: false,
      description: 'Web Push to devices that have not acked within `after` seconds (docs/webpush.md).',
    },
  );

export function publishSchema(cfg: ApiConfig) {
  const body = Type.Object(
    {
      // One object with exactly one key rather than an anyOf of four: validation errors then
      // name the field that is wrong instead of listing every alternative.
      to: Type.Object(
        {
          devices: Type.Optional(Ids('Device')),
          users: Type.Optional(Ids('User')),
          topic: Type.Optional({ ...Topic, description: 'Every device subscribed to this topic.' }),
          broadcast: Type.Optional(Type.Literal(true, { description: 'Every device.' })),
        },
        {
          additionalProperties: false,
          minProperties: 1,
          maxProperties: 1,
          description: 'Who gets it: exactly one of devices, users, topic, broadcast.',
        },
      ),
      data: Type.Unknown({ description: 'Any JSON value, delivered as is.' }),
      ttl: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: cfg.ttlMaxS,
          description: `Seconds it may still be delivered, from deliverAt or now (default ${cfg.ttlDefaultS}).`,
        }),
      ),
      deliverAt: Type.Optional(
        Type.String({
          format: 'date-time',
          description: 'Send later (ISO 8601 with a time zone); in the past or now: send now.',
        }),
      ),
      push: Type.Optional(PushPolicySchema(cfg)),
      // Only a pattern (its {1,64} bounds the length): one error keyword, one message naming it.
      collapseKey: Type.Optional(
        Type.String({
          pattern: COLLAPSE_KEY_RE.source,
          description:
            'A newer notification with the same key on the same stream supersedes this one for devices that have not received it yet: 1 to 64 of A-Z a-z 0-9 _ . : ~ - (docs/api.md).',
        }),
      ),
      // An enum rather than a union of literals: Ajv's error is then one `enum` naming the field.
      priority: Type.Optional(
        Type.Unsafe<Priority>({
          type: 'string',
          enum: [...PRIORITIES],
          description:
            'high, normal (default) or low: the worker takes high before normal before low; sent to the device and as Web Push Urgency.',
        }),
      ),
    },
    { additionalProperties: false },
  );
  return {
    headers: Type.Object({
      'idempotency-key': Type.Optional(
        Type.String({
          pattern: IDEMPOTENCY_KEY_PATTERN,
          description: 'Makes retries safe: the same key and body within the window give the same id.',
        }),
      ),
    }),
    body,
    response: { 202: Accepted, ...errorResponses(400, 401, 409, 413, 415, 503) },
  };
}

export type PublishBody = Static<ReturnType<typeof publishSchema>['body']>;

/** Many publishes in one request: the same body per item, accepted or refused together when invalid. */
export function batchSchema(cfg: ApiConfig) {
  const item = publishSchema(cfg).body;
  const body = Type.Object(
    {
      notifications: Type.Array(item, {
        minItems: 1,
        maxItems: cfg.maxBatch,
        description: `1 to ${cfg.maxBatch} publishes, each as for POST /v1/notifications; appended in this order.`,
      }),
    },
    { additionalProperties: false },
  );
  const Results = (description: string) =>
    Type.Object({ results: Type.Array(Type.Union([Accepted, HeraldError])) }, { description });
  return {
    body,
    response: {
      202: Type.Object(
        { results: Type.Array(Accepted) },
        { description: 'Every notification accepted; `results[i]` is `notifications[i]`.' },
      ),
      207: Results(
        'Some accepted, some not (Redis failed part way): `results[i]` is `{id, status}` or `{code, message}`; retry only the failed ones.',
      ),
      ...errorResponses(400, 401, 413, 415, 503),
    },
  };
}

export type BatchBody = Static<ReturnType<typeof batchSchema>['body']>;

const STATES = ['scheduled', 'queued', 'sending', 'sent', 'cancelled', 'expired'];

export const Accepted = Type.Object(
  {
    id: Type.String({ description: 'Notification id (UUIDv7).' }),
    status: Type.String({
      enum: STATES,
      description:
        '`sent` (a direct publish: already appended to its streams and the nodes rung, before this answer), `queued` (a fan-out job for the worker: users, longer device lists) or `scheduled` (a delayed job, future `deliverAt`); a repeated Idempotency-Key answers the current state of the notification.',
    }),
  },
  {
    description:
      'Durably accepted: appended to the streams (direct publish), or status written and fan-out job added (queued, scheduled).',
  },
);

export const NotificationParams = Type.Object({ id: Type.String({ pattern: NOTIFICATION_ID_PATTERN }) });

export const Status = Type.Object(
  {
    id: Type.String(),
    state: Type.String({ enum: STATES }),
    target: Type.String({ enum: ['devices', 'users', 'topic', 'broadcast'] }),
    createdAt: Type.String({ format: 'date-time' }),
    deliverAt: Type.Optional(Type.String({ format: 'date-time', description: 'Only for scheduled ones.' })),
    expiresAt: Type.String({ format: 'date-time' }),
    counts: Type.Object({
      targets: Type.Integer({ description: 'Devices it was addressed to, counted at fan-out.' }),
      delivered: Type.Integer({ description: 'Deliveries written to a device socket.' }),
      acked: Type.Integer({ description: 'Devices that acknowledged it.' }),
      expired: Type.Integer({ description: 'After expiry: targets that never got it.' }),
      pushed: Type.Integer({ description: 'Web Push messages push services accepted (docs/webpush.md).' }),
      pushFailed: Type.Integer({
        description: 'Web Push messages refused for good: gone subscription, other 4xx, retries exhausted.',
      }),
    }),
  },
  { description: 'State and delivery counts of the notification.' },
);

export const Cancelled = Type.Object(
  { id: Type.String(), state: Type.Literal('cancelled') },
  { description: 'Cancelled (also when it already was).' },
);

export const DeviceId = Type.String({ pattern: ID_RE.source });

export const TopicDeviceParams = Type.Object({ topic: Topic, device: DeviceId });

/** 204: no body (typed as undefined so handlers call `send()` without one). */
export const NoContent = Type.Unsafe<undefined>({ type: 'null', description: 'Done.' });

/** `/healthz` and `/readyz` on every process: `healthOk` / `notReady` of @herald/protocol. */
export const Health = Type.Object({
  status: Type.Enum(['ok', 'unavailable']),
  service: Type.Enum(['api', 'worker', 'node']),
  code: Type.Optional(Type.Enum(['HERALD_NOT_READY'])),
  message: Type.Optional(Type.String()),
});

/** Error answers, `{"code": "HERALD_...", "message": "..."}`; one shared schema in OpenAPI. */
export const HeraldError = Type.Object(
  {
    code: Type.String({
      description: 'Stable error code (see the error table in docs/api.md).',
      enum: HTTP_ERRORS.map((e) => e.code),
    }),
    message: Type.String({ description: 'What is wrong, in the terms of the request.' }),
  },
  { $id: 'HeraldError', description: 'An error.' },
);

/** OpenAPI description of each error status: the catalog's codes with that status. */
const ERRORS = Object.fromEntries(
  [400, 401, 403, 404, 409, 413, 415, 429, 503].map((status) => [
    status,
    HTTP_ERRORS.filter((e) => e.status === status && !/^(console|push node) only/.test(e.meaning))
      .map((e) => `\`${e.code}\`: ${e.meaning}`)
      .join(' '),
  ]),
) as Record<400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 503, string>;

/** Response schemas of the given error statuses, for route schemas (and so for OpenAPI). */
export function errorResponses<const S extends readonly (keyof typeof ERRORS & number)[]>(...statuses: S) {
  const out: Record<number, ReturnType<typeof Type.Ref>> = {};
  for (const s of statuses) out[s] = Type.Ref('HeraldError', { description: ERRORS[s] });
  return out as { [K in S[number]]: ReturnType<typeof Type.Ref> };
}

// ---- admin (read-only views of what Redis holds) ----

export const AdminDeviceParams = Type.Object({ device: DeviceId });
export const AdminTopicParams = Type.Object({ topic: Topic });

export const NodeList = Type.Object(
  {
    nodes: Type.Array(
      Type.Object({
        id: Type.String(),
        lastSeen: Type.String({ format: 'date-time', description: 'Last heartbeat.' }),
        connections: Type.Integer({ description: 'WebSocket connections at the last heartbeat.' }),
      }),
    ),
  },
  { description: 'Push nodes seen in the last 2 minutes, by id.' },
);

export const DeviceView = Type.Object(
  {
    device: Type.String(),
    registered: Type.Boolean({
      description: 'Said hello within retention (is in the broadcast audience).',
    }),
    nodes: Type.Array(
      Type.Object({
        id: Type.String(),
        address: Type.Union([Type.String(), Type.Null()], {
          description: 'Client address as the node saw it (PROXY protocol aware); null if not recorded.',
        }),
      }),
      { description: 'Nodes where the device is connected now, by id.' },
    ),
    topics: Type.Array(Type.String(), { description: 'Durable topic subscriptions.' }),
    webpush: Type.Array(
      Type.Object({
        id: Type.String({ description: 'Subscription id (first 16 hex of sha256 of the endpoint).' }),
        host: Type.String({ description: "The push service's host (the endpoint itself is not shown)." }),
        createdAt: Type.String({ format: 'date-time' }),
      }),
      { description: 'Web Push subscriptions, oldest first (docs/webpush.md).' },
    ),
    cursors: Type.Array(
      Type.Object({
        stream: Type.String({ description: '`inbox`, `broadcast` or `topic:<name>`.' }),
        head: Type.Integer({ description: 'Last seq appended to the stream (0: none yet).' }),
        acked: Type.Union([Type.Integer(), Type.Null()], {
          description: 'Last seq the device acked (null: no cursor stored).',
        }),
      }),
      {
        description: 'Per stream: head and acked cursor; head minus acked is what the device has not acked.',
      },
    ),
  },
  { description: 'What Redis holds about the device (an unknown device has empty lists).' },
);

export const TopicView = Type.Object(
  {
    topic: Type.String(),
    subscribers: Type.Integer({
      description: 'Devices durably subscribed (the target count of a topic publish).',
    }),
    head: Type.Integer({ description: 'Last seq appended to the topic stream (0: none yet).' }),
  },
  { description: 'Audience and stream head of a topic.' },
);

/** A browser's PushSubscription as `subscription.toJSON()` gives it (docs/webpush.md). */
export const WebPushSubscriptionBody = Type.Object(
  {
    endpoint: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: "The push service's URL for this browser.",
    }),
    keys: Type.Object(
      {
        p256dh: Type.String({
          pattern: '^[A-Za-z0-9_-]{80,100}={0,2}$',
          description: 'P-256 public key, base64url.',
        }),
        auth: Type.String({
          pattern: '^[A-Za-z0-9_-]{16,32}={0,2}$',
          description: 'Auth secret, base64url.',
        }),
      },
      { additionalProperties: false },
    ),
    expirationTime: Type.Optional(Type.Union([Type.Number(), Type.Null()], { description: 'Ignored.' })),
  },
  { additionalProperties: false },
);

export const WebPushUnsubscribeBody = Type.Union([
  Type.Object({ endpoint: Type.String({ minLength: 1, maxLength: 2048 }) }, { additionalProperties: false }),
  Type.Null(),
]);

export const WebPushRegistered = Type.Object(
  {
    id: Type.String({ description: 'Subscription id.' }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { description: 'The subscription is stored (several per device, the oldest dropped past the bound).' },
);

/** `GET /v1/webpush/key?app=`: whose key (no API key tells the app); absent: `default`. */
export const WebPushKeyQuery = Type.Object(
  { app: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$' })) },
  { additionalProperties: false },
);

export const WebPushKey = Type.Object(
  {
    publicKey: Type.String({
      description: 'VAPID public key (base64url), the applicationServerKey for pushManager.subscribe.',
    }),
  },
  { description: 'The VAPID public key pages subscribe with.' },
);
