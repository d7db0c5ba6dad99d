import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { PATTERN_MESSAGES, webhookProblems, webhooksSchema } from './webhooks.js';

/**
 * The apps file (HERALD_APPS_FILE): its schema and the checks a schema cannot express, each
 * problem named by its field path (`apps[1].keys[0].scopes[0]: must be one of ...`).
 */
export const SCOPES = ['publish', 'status:read', 'presence:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const APP_ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,31}$';
/** Shortest HS256 secret accepted, as for HERALD_TOKEN_SECRET. */
export const MIN_APP_SECRET_LENGTH = 16;

const PerSecond = (description: string) =>
  Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description }));

export const limitsSchema = Type.Object(
  {
    publishesPerSecond: PerSecond(
      'Publish requests per second for the whole app (all its keys, all API processes).',
    ),
    publishBurst: PerSecond('Publishes admitted at once above the per-second rate (default: the rate).'),
    keyPublishesPerSecond: PerSecond('Publish requests per second for each API key of the app.'),
    keyPublishBurst: PerSecond('Burst of the per-key rate (default: the per-key rate).'),
    notificationsPerSecond: PerSecond(
      'Notifications fanned out per second for the app: one per listed device, one per listed user, one per topic or broadcast publish.',
    ),
    maxBatch: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10_000, description: 'Most items in one batch publish.' }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000_000,
        description: 'Connections of the app across all nodes.',
      }),
    ),
    maxConnectionsPerUser: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000,
        description: 'Connections per user of the app on one node.',
      }),
    ),
  },
  { additionalProperties: false },
);

const keySchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    scopes: Type.Array(Type.Enum([...SCOPES]), { minItems: 1 }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
    // Where this key's notification events (and the app's device events) go (docs/webhooks.md).
    webhooks: Type.Optional(webhooksSchema),
  },
  { additionalProperties: false },
);

const appSchema = Type.Object(
  {
    id: Type.String({ pattern: APP_ID_PATTERN }),
    keys: Type.Array(keySchema, { maxItems: 1000 }),
    tokens: Type.Object(
      {
        secret: Type.Optional(Type.String({ minLength: MIN_APP_SECRET_LENGTH })),
        jwksUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
        jwksFile: Type.Optional(Type.String({ minLength: 1 })),
        issuer: Type.Optional(Type.String({ minLength: 1 })),
      },
      { additionalProperties: false },
    ),
    allowedOrigins: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    limits: Type.Optional(limitsSchema),
    // The app's own VAPID pair for Web Push (docs/webpush.md); absent: HERALD_VAPID_*.
    vapid: Type.Optional(
      Type.Object(
        {
          publicKey: Type.String({ pattern: '^[A-Za-z0-9_-]{80,100}$' }),
          privateKey: Type.String({ pattern: '^[A-Za-z0-9_-]{40,50}$' }),
          subject: Type.String({ pattern: '^(mailto:|https://)\\S+$' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const appsFileSchema = Type.Object(
  { apps: Type.Array(appSchema, { minItems: 1, maxItems: 10_000 }) },
  { additionalProperties: false },
);
export type AppsFile = Static<typeof appsFileSchema>;

/** `/apps/1/keys/0/scopes/0` -> `apps[1].keys[0].scopes[0]` */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const part of pointer.split('/').slice(1)) {
    const p = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  }
  return out || '(root)';
}

export interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** One schema error as `field.path: problem`; undefined for errors another one already tells. */
export function describe(e: SchemaError): string | undefined {
  const at = fieldPath(e.instancePath);
  switch (e.keyword) {
    case 'boolean':
      return undefined; // reported by its additionalProperties error
    case 'additionalProperties': {
      const extra = (e.params.additionalProperties as string[] | undefined) ?? [];
      return `${at}: unknown field${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`;
    }
    case 'required': {
      const missing = (e.params.requiredProperties as string[] | undefined) ?? [];
      return `${at}: missing ${missing.join(', ')}`;
    }
    case 'enum':
      return `${at}: must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      if (PATTERN_MESSAGES[String(e.params.pattern)])
        return `${at}: ${PATTERN_MESSAGES[String(e.params.pattern)]}`;
      return `${at}: must match ${String(e.params.pattern)}`;
    case 'format':
      return `${at}: must be ${e.params.format === 'date-time' ? 'an ISO 8601 date-time (2026-12-31T00:00:00Z)' : `a ${String(e.params.format)}`}`;
    default:
      return `${at}: ${e.message}`;
  }
}

/** Every problem of a parsed apps file, each naming its field; empty when it is valid. */
export function appsFileProblems(data: unknown): string[] {
  const schemaProblems = [...Value.Errors(appsFileSchema, data)].flatMap(
    (e) => describe(e as SchemaError) ?? [],
  );
  if (schemaProblems.length > 0) return [...new Set(schemaProblems)].slice(0, 50);
  const file = data as AppsFile;
  const problems: string[] = [];
  const appIds = new Map<string, number>();
  const hashes = new Map<string, string>();
  file.apps.forEach((app, i) => {
    const at = `apps[${i}]`;
    const first = appIds.get(app.id);
    if (first !== undefined) problems.push(`${at}.id: "${app.id}" is also apps[${first}].id`);
    else appIds.set(app.id, i);
    if (!app.tokens.secret && !app.tokens.jwksUrl && !app.tokens.jwksFile)
      problems.push(`${at}.tokens: needs secret, jwksUrl or jwksFile (how nodes verify its device tokens)`);
    if (app.tokens.jwksUrl && app.tokens.jwksFile)
      problems.push(`${at}.tokens: jwksUrl and jwksFile are exclusive, give one`);
    const keyIds = new Map<string, number>();
    const hookIds = new Map<string, string>();
    app.keys.forEach((key, k) => {
      const kat = `${at}.keys[${k}]`;
      const dup = keyIds.get(key.id);
      if (dup !== undefined) problems.push(`${kat}.id: "${key.id}" is also ${at}.keys[${dup}].id`);
      else keyIds.set(key.id, k);
      const other = hashes.get(key.sha256);
      if (other) problems.push(`${kat}.sha256: the same key is also ${other}`);
      else hashes.set(key.sha256, kat);
      if (new Set(key.scopes).size !== key.scopes.length) problems.push(`${kat}.scopes: lists a scope twice`);
      if (key.webhooks) problems.push(...webhookProblems(key.webhooks, `${kat}.webhooks`, hookIds));
    });
    const l = app.limits;
    if (l?.publishBurst && !l.publishesPerSecond)
      problems.push(`${at}.limits.publishBurst: needs publishesPerSecond`);
    if (l?.keyPublishBurst && !l.keyPublishesPerSecond)
      problems.push(`${at}.limits.keyPublishBurst: needs keyPublishesPerSecond`);
  });
  return problems;
}
