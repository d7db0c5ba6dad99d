import { ID_RE, MAX_TARGET_IDS, MAX_TOPIC_LENGTH, TOPIC_RE } from '@herald/protocol';
import Type, { type Static } from 'typebox';
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

export function publishSchema(cfg: ApiConfig) {
  const body = Type.Object(
    {
      // One object with exactly one key rather than an anyOf of four: validation errors then
      // name the field that is wrong instead of listing every alternative.
      to: Type.Object(
        {
          devices: Type.Optional(Ids('Device')),
          users: Type.Optional(Ids('User')),
          topic: Type.Optional(Topic),
          broadcast: Type.Optional(Type.Literal(true)),
        },
        { additionalProperties: false, minProperties: 1, maxProperties: 1 },
      ),
      data: Type.Unknown({ description: 'Any JSON value, delivered as is.' }),
      ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: cfg.ttlMaxS, description: 'Seconds.' })),
      deliverAt: Type.Optional(Type.String({ format: 'date-time' })),
    },
    { additionalProperties: false },
  );
  return {
    headers: Type.Object({
      'idempotency-key': Type.Optional(Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN })),
    }),
    body,
    response: { 202: Accepted },
  };
}

export type PublishBody = Static<ReturnType<typeof publishSchema>['body']>;

export const Accepted = Type.Object({ id: Type.String(), status: Type.String() });

export const NotificationParams = Type.Object({ id: Type.String({ pattern: NOTIFICATION_ID_PATTERN }) });

export const Status = Type.Object({
  id: Type.String(),
  state: Type.String(),
  target: Type.String(),
  createdAt: Type.String(),
  deliverAt: Type.Optional(Type.String()),
  expiresAt: Type.String(),
  counts: Type.Object({
    targets: Type.Integer(),
    delivered: Type.Integer(),
    acked: Type.Integer(),
    expired: Type.Integer(),
  }),
});

export const Cancelled = Type.Object({ id: Type.String(), state: Type.Literal('cancelled') });

export const TopicDeviceParams = Type.Object({
  topic: Topic,
  device: Type.String({ pattern: ID_RE.source }),
});

export const Health = Type.Object({ status: Type.String() });
