import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SCOPES, Type } from '@herald/config';
import { type ApiKeyStore, TooManyKeys } from '@herald/store';
import { BadRequest, ConfigKey, NotFound } from '../errors.js';
import { errorResponses } from '../schemas.js';

export interface KeyRoutesOptions {
  store: ApiKeyStore;
}

/** Longest lifetime a created key may be given (10 years). */
const MAX_LIFETIME_S = 10 * 365 * 86_400;

const Scopes = Type.Array(Type.Enum([...SCOPES]), {
  minItems: 1,
  maxItems: SCOPES.length,
  uniqueItems: true,
  description: 'What the key may do: `publish`, `status:read`, `presence:read`, `admin`.',
});

const CreateKey = Type.Object(
  {
    scopes: Scopes,
    expiresIn: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_LIFETIME_S,
        description: 'Lifetime in seconds (or give expiresAt).',
      }),
    ),
    expiresAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'When the key stops working.' }),
    ),
    name: Type.Optional(
      Type.String({ pattern: '^[\\x20-\\x7e]{1,64}$', description: 'A label for listings.' }),
    ),
  },
  { additionalProperties: false },
);

const KeyView = Type.Object({
  id: Type.String(),
  scopes: Type.Array(Type.String()),
  createdAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'null for keys of the apps file or HERALD_API_KEYS.',
  }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  name: Type.Union([Type.String(), Type.Null()]),
  source: Type.Enum(['config', 'redis'], {
    description: '`config`: the apps file or HERALD_API_KEYS (revoke there); `redis`: created with this API.',
  }),
});

const Created = Type.Object(
  {
    key: Type.String({ description: 'The key itself: shown this once, Herald keeps only its sha256.' }),
    app: Type.String(),
    ...KeyView.properties,
  },
  { description: 'The new key.' },
);

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/**
 * Runtime API keys of the caller's app (`admin` scope): create (the key is in the answer once),
 * list (ids, scopes, dates; never a key or its hash), revoke. Keys of the apps file are listed
 * but revoked by editing the file.
 */
export const keyRoutes: FastifyPluginAsyncTypebox<KeyRoutesOptions> = async (app, { store }) => {
  const tags = ['keys'];

  app.post(
    '/keys',
    {
      schema: {
        summary: 'Create an API key',
        description:
          "For the caller's app. The answer holds the key once; Herald stores only its sha256. Rotation: create the new key, deploy it, then let the old one expire or revoke it.",
        tags,
        body: CreateKey,
        response: { 201: Created, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (req, reply) => {
      const { scopes, expiresIn, expiresAt, name } = req.body;
      if (expiresIn !== undefined && expiresAt !== undefined)
        throw new BadRequest('give expiresIn or expiresAt, not both');
      const now = Date.now();
      let until = expiresIn !== undefined ? now + expiresIn * 1000 : undefined;
      if (expiresAt !== undefined) {
        until = Date.parse(expiresAt);
        if (!(until > now)) throw new BadRequest('expiresAt is in the past');
        if (until > now + MAX_LIFETIME_S * 1000)
          throw new BadRequest('expiresAt is more than 10 years ahead');
      }
      const appId = req.tenant.app.id;
      try {
        const { key, record } = await store.create(appId, {
          scopes,
          ...(until !== undefined ? { expiresAt: until } : {}),
          ...(name ? { name } : {}),
        });
        req.log.info({ keyId: record.id, scopes }, 'API key created');
        return reply.code(201).send({
          key,
          app: appId,
          id: record.id,
          scopes: record.scopes,
          createdAt: iso(record.createdAt),
          expiresAt: iso(record.expiresAt),
          name: record.name ?? null,
          source: 'redis' as const,
        });
      } catch (err) {
        if (err instanceof TooManyKeys) throw new BadRequest(err.message);
        throw err;
      }
    },
  );

  app.get(
    '/keys',
    {
      schema: {
        summary: "The app's API keys",
        description:
          'Keys of the apps file (or HERALD_API_KEYS) and keys created here; never a key or its hash.',
        tags,
        response: { 200: Type.Object({ keys: Type.Array(KeyView) }), ...errorResponses(401, 403, 503) },
      },
    },
    async (req) => {
      const fromConfig = req.tenant.app.keys.map((k) => ({
        id: k.id,
        scopes: k.scopes,
        createdAt: null,
        expiresAt: iso(k.expiresAt),
        name: null,
        source: 'config' as const,
      }));
      const stored = (await store.list(req.tenant.app.id)).map((k) => ({
        id: k.id,
        scopes: k.scopes,
        createdAt: iso(k.createdAt),
        expiresAt: iso(k.expiresAt),
        name: k.name ?? null,
        source: 'redis' as const,
      }));
      return { keys: [...fromConfig, ...stored] };
    },
  );

  app.delete(
    '/keys/:id',
    {
      schema: {
        summary: 'Revoke an API key',
        description:
          'A key created with this API stops working at once on this process and within HERALD_API_KEY_CACHE_MS on the others. Keys of the apps file: 409 HERALD_CONFIG_KEY.',
        tags,
        params: Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }) }),
        response: {
          200: Type.Object({ id: Type.String(), revoked: Type.Literal(true) }),
          ...errorResponses(400, 401, 403, 404, 409, 503),
        },
      },
    },
    async (req) => {
      const { id } = req.params;
      if (req.tenant.app.keys.some((k) => k.id === id)) throw new ConfigKey(id);
      if (!(await store.revoke(req.tenant.app.id, id))) throw new NotFound(`no API key ${id}`);
      req.log.info({ keyId: id }, 'API key revoked');
      return { id, revoked: true as const };
    },
  );
};
