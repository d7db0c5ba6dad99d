import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '@herald/protocol';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';

/**
 * Webhook endpoints (issue #17, docs/webhooks.md): in the apps file under each API key
 * (`apps[].keys[].webhooks`), or for the single app from the environment in HERALD_WEBHOOKS
 * (a JSON array, applying to every key of HERALD_API_KEYS).
 */

/** Most endpoints per key (and in HERALD_WEBHOOKS). */
export const MAX_WEBHOOKS = 20;
export const WEBHOOK_URL_PATTERN = '^https?://[^\\s/?#]+\\S*$';
/** Standard Webhooks secret: `whsec_` then base64 of 16 to 64 bytes. */
export const WEBHOOK_SECRET_PATTERN = '^whsec_[A-Za-z0-9+/]{22,88}={0,2}$';
export const WEBHOOK_ID_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';

export const webhookSchema = Type.Object(
  {
    id: Type.String({ pattern: WEBHOOK_ID_PATTERN }),
    url: Type.String({ pattern: WEBHOOK_URL_PATTERN, maxLength: 2048 }),
    events: Type.Array(Type.Enum([...WEBHOOK_EVENT_TYPES]), {
      minItems: 1,
      maxItems: WEBHOOK_EVENT_TYPES.length,
    }),
    secret: Type.String({ pattern: WEBHOOK_SECRET_PATTERN }),
  },
  { additionalProperties: false },
);
export const webhooksSchema = Type.Array(webhookSchema, { maxItems: MAX_WEBHOOKS });
export type WebhookInput = Static<typeof webhookSchema>;

/** How a schema `pattern` problem is told (instead of `must match <regex>`). */
export const PATTERN_MESSAGES: Record<string, string> = {
  [WEBHOOK_URL_PATTERN]: 'must be an http(s) URL',
  [WEBHOOK_SECRET_PATTERN]: 'must be a Standard Webhooks secret: whsec_ then base64 of 16-64 bytes',
};

/** An endpoint of an app: where events of one key (or, from HERALD_WEBHOOKS, every key) go. */
export interface WebhookEndpoint {
  /** Unique within the app: dead letters and logs name it. */
  id: string;
  url: string;
  events: WebhookEventType[];
  /** `whsec_...`; never logged or listed. */
  secret: string;
  /** The API key whose notification events it gets; undefined: every key of the app. */
  keyId?: string;
}

/** Problems of a list of endpoints beyond the schema (ids unique in the app, events listed once). */
export function webhookProblems(
  list: readonly WebhookInput[],
  at: string,
  seen: Map<string, string>,
): string[] {
  const problems: string[] = [];
  list.forEach((w, i) => {
    const wat = `${at}[${i}]`;
    const other = seen.get(w.id);
    if (other) problems.push(`${wat}.id: "${w.id}" is also ${other}.id (endpoint ids are unique in an app)`);
    else seen.set(w.id, wat);
    if (new Set(w.events).size !== w.events.length) problems.push(`${wat}.events: lists an event twice`);
    const bytes = Buffer.from(w.secret.slice('whsec_'.length), 'base64').length;
    if (bytes < 16 || bytes > 64) problems.push(`${wat}.secret: must decode to 16-64 bytes (got ${bytes})`);
  });
  return problems;
}

/** Endpoints from HERALD_WEBHOOKS (JSON array); problems name `HERALD_WEBHOOKS[0].url`. */
export function webhooksFromEnv(
  text: string | undefined,
  describe: (e: unknown) => string | undefined,
): { endpoints: WebhookEndpoint[]; problems: string[] } {
  if (!text?.trim()) return { endpoints: [], problems: [] };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { endpoints: [], problems: [`HERALD_WEBHOOKS: not valid JSON (${(err as Error).message})`] };
  }
  const schema = [...new Set([...Value.Errors(webhooksSchema, data)].flatMap((e) => describe(e) ?? []))];
  if (schema.length > 0)
    return {
      endpoints: [],
      problems: schema.slice(0, 50).map((p) => `HERALD_WEBHOOKS${p.startsWith('(root)') ? p.slice(6) : p}`),
    };
  const list = data as WebhookInput[];
  const problems = webhookProblems(list, 'HERALD_WEBHOOKS', new Map());
  return { endpoints: problems.length ? [] : list.map((w) => ({ ...w, events: [...w.events] })), problems };
}

/** The event types any endpoint of an app wants (nodes record only these). */
export function wantedEvents(endpoints: readonly WebhookEndpoint[] | undefined): Set<string> {
  return new Set((endpoints ?? []).flatMap((e) => e.events));
}
