import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HttpError, MAX_CURSORS, MAX_ENCODED_CURSORS } from '@herald/protocol';

/** The committed copy, beside the API's docs/openapi.json. */
export const NODE_OPENAPI_FILE = fileURLToPath(new URL('../../../docs/openapi-node.json', import.meta.url));
export const NODE_OPENAPI_UPDATE = 'npm run openapi -w @herald/node';

/** The HTTP errors a push node's transport routes answer (catalog.ts). */
const CODES = [
  HttpError.BadRequest,
  HttpError.Unauthorized,
  HttpError.TokenExpired,
  HttpError.OriginForbidden,
  HttpError.TopicForbidden,
  HttpError.PayloadTooLarge,
  HttpError.UnsupportedMediaType,
  HttpError.Internal,
  HttpError.RedisUnavailable,
  HttpError.NodeBusy,
  HttpError.RateLimited,
];

const error = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

/** The token's app at its connection cap across nodes (docs/tenancy.md). */
const appCap = error(
  "`HERALD_RATE_LIMITED`: the token's app is at its connection cap across nodes, with `Retry-After`",
);

const token = {
  name: 'token',
  in: 'query',
  required: false,
  description:
    'The device token, for clients that cannot set `Authorization` (a browser `EventSource`); the `herald_token` cookie (`POST /v1/cookie`) is the other way. Never logged.',
  schema: { type: 'string', maxLength: 8192 },
};
const topics = {
  name: 'topics',
  in: 'query',
  required: false,
  description:
    "Comma-separated topics on top of the device's durable subscriptions, each allowed by the token's `topics` claim (403 otherwise).",
  schema: { type: 'string' },
  example: 'news.sport,chat.room-1',
};
const cursors = {
  name: 'cursors',
  in: 'query',
  required: false,
  description: 'Where to resume: encoded cursors (see `Cursors`).',
  schema: { $ref: '#/components/schemas/Cursors' },
};
const unauthorized = error(
  '`HERALD_UNAUTHORIZED` (no token, not Bearer, invalid) or `HERALD_TOKEN_EXPIRED`, before any stream starts',
);

/** The OpenAPI document of a push node's HTTP transports (docs/protocol.md has the prose). */
export function nodeOpenApi(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Herald push node: HTTP transports',
      version: '1',
      description:
        "Server-Sent Events, long-poll and acks over HTTP on the push nodes' port (the same balancer as `/v1/ws`). Any node answers any request; cursors make resume exact. Prose: docs/protocol.md. The publish API is docs/openapi.json.",
    },
    components: {
      securitySchemes: {
        deviceToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        tokenCookie: {
          type: 'apiKey',
          in: 'cookie',
          name: 'herald_token',
          description:
            'The device token in the cookie `POST /v1/cookie` sets; read when there is no `Authorization` header and no `token` parameter.',
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['code', 'message'],
          properties: {
            code: { type: 'string', enum: CODES.map((c) => c.code) },
            message: { type: 'string' },
          },
        },
        Cursors: {
          type: 'string',
          description: `\`2.\` + \`stream:seq\` pairs joined by \`,\` (SSE ids), or \`1.\` + base64url (no padding) of the JSON \`{stream: seq}\` (long-poll answers); both accepted everywhere. At most ${MAX_CURSORS} streams and ${MAX_ENCODED_CURSORS} characters. Opaque to clients.`,
          pattern: '^(1\\.[A-Za-z0-9_-]*|2\\.[A-Za-z0-9_.:,-]*)$',
          maxLength: MAX_ENCODED_CURSORS,
          example: '2.inbox:3,topic:news:7',
        },
        CursorMap: {
          type: 'object',
          description: 'Last processed seq per stream (`inbox`, `broadcast`, `topic:<name>`).',
          maxProperties: MAX_CURSORS,
          additionalProperties: { type: 'integer', minimum: 0 },
          example: { inbox: 3, 'topic:news': 5 },
        },
        PollAnswer: {
          type: 'object',
          required: ['cursors', 'frames'],
          properties: {
            cursors: { $ref: '#/components/schemas/Cursors' },
            frames: {
              type: 'array',
              description:
                '`notification`, `gap` and `reconnect` frames, exactly as on WebSocket (docs/protocol.md).',
              items: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } },
            },
          },
        },
      },
    },
    security: [{ deviceToken: [] }, { tokenCookie: [] }],
    paths: {
      '/v1/cookie': {
        post: {
          summary: 'Sets the device token in an HttpOnly cookie for the SSE, long-poll and ack routes',
          description:
            'Verifies the `Authorization: Bearer` token (only the header: not `token` or the cookie) and answers with `Set-Cookie: herald_token=<token>; Max-Age=<seconds the token has left>; Path=/v1; HttpOnly; SameSite=Strict`, plus `Secure` over TLS, with `X-Forwarded-Proto: https` or with `HERALD_COOKIE_SECURE`. A browser on a listed origin (`HERALD_ALLOWED_ORIGINS`) gets `Access-Control-Allow-Credentials: true`.',
          security: [{ deviceToken: [] }],
          responses: {
            204: { description: 'The cookie is set.' },
            401: error(
              '`HERALD_UNAUTHORIZED` (no Bearer header, invalid) or `HERALD_TOKEN_EXPIRED`; no cookie',
            ),
            403: error('`HERALD_ORIGIN_FORBIDDEN`'),
          },
        },
        delete: {
          summary: 'Clears the token cookie (`Max-Age=0`)',
          security: [],
          responses: {
            204: { description: 'The cookie is cleared.' },
            403: error('`HERALD_ORIGIN_FORBIDDEN`'),
          },
        },
      },
      '/v1/sse': {
        get: {
          summary: 'Server-Sent Events: welcome, notification, gap, refresh, reconnect and error events',
          parameters: [
            topics,
            cursors,
            token,
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description: 'Sent by browsers on reconnect; wins over `cursors`.',
              schema: { $ref: '#/components/schemas/Cursors' },
            },
          ],
          responses: {
            200: {
              description:
                'An event stream. Refusals after authentication (capacity 4013, draining 4012) are an `error` event, then the end.',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            400: error('malformed cursors or topics'),
            401: unauthorized,
            403: error('`HERALD_TOPIC_FORBIDDEN` or `HERALD_ORIGIN_FORBIDDEN`'),
            429: appCap,
          },
        },
      },
      '/v1/poll': {
        get: {
          summary: 'Long-poll: waiting entries at once, else held until one arrives or `wait` ends',
          parameters: [
            topics,
            cursors,
            token,
            {
              name: 'wait',
              in: 'query',
              required: false,
              description: 'Seconds to hold the poll (default 25, capped at `HERALD_POLL_MAX_WAIT_S`).',
              schema: { type: 'integer', minimum: 0, maximum: 999_999 },
            },
          ],
          responses: {
            200: {
              description: 'Frames (at most `HERALD_REPLAY_BATCH`) and the cursors after them.',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/PollAnswer' } } },
            },
            400: error('malformed cursors, topics or wait'),
            401: unauthorized,
            403: error('`HERALD_TOPIC_FORBIDDEN` or `HERALD_ORIGIN_FORBIDDEN`'),
            429: appCap,
            503: error(
              '`HERALD_NODE_BUSY` (connection cap, accept rate, per-user cap), with `Retry-After: 1`',
            ),
          },
        },
      },
      '/v1/acks': {
        post: {
          summary: 'Cumulative acks, written to Redis (stored cursor and acked counts)',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['cursors'],
                  additionalProperties: false,
                  properties: {
                    cursors: {
                      oneOf: [
                        { $ref: '#/components/schemas/CursorMap' },
                        { $ref: '#/components/schemas/Cursors' },
                      ],
                    },
                  },
                },
              },
            },
          },
          responses: {
            204: { description: 'Acked.' },
            400: error(
              "malformed body or cursors, or a seq past the stream's last entry (the message names the stream)",
            ),
            401: unauthorized,
            403: error('`HERALD_TOPIC_FORBIDDEN` or `HERALD_ORIGIN_FORBIDDEN`'),
            413: error('body over 64 KiB'),
            415: error('body not application/json'),
          },
        },
      },
    },
  };
}

export function nodeOpenApiText(): string {
  return `${JSON.stringify(nodeOpenApi(), null, 2)}\n`;
}

export function committedNodeOpenApi(): string {
  try {
    return readFileSync(NODE_OPENAPI_FILE, 'utf8');
  } catch {
    return '';
  }
}

// `node dist/openapi.js` (npm run openapi -w @herald/node) writes docs/openapi-node.json.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  writeFileSync(NODE_OPENAPI_FILE, nodeOpenApiText());
  process.stdout.write(`wrote ${NODE_OPENAPI_FILE}\n`);
}
