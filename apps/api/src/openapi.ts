import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

/** Name of the bearer scheme in the OpenAPI document. */
export const API_KEY_SCHEME = 'apiKey';
export const DEVICE_TOKEN_SCHEME = 'deviceToken';

/** Routes left out of the OpenAPI document: the web console is a page, not part of the API. */
const UNDOCUMENTED = /^\/console(\/|$)/;

/**
 * OpenAPI 3.1 generated from the route schemas (`@fastify/swagger`), served as JSON at
 * `/docs/json` and as Swagger UI at `/docs`. Must be registered before the routes, so it sees
 * them. Routes under /v1 are marked as needing the API key, exactly those behind the auth hook.
 * The document is also kept in the repository as docs/openapi.json (`npm run openapi -w @herald/api`).
 */
export function registerOpenApi(app: FastifyInstance): void {
  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Herald API',
        version: '1.0.0',
        description:
          'Publish push notifications to devices, users, topics or everyone; schedule, cancel and follow them; manage topic membership; inspect nodes, devices and topics. Errors are `{"code": "HERALD_...", "message": "..."}`.',
      },
      tags: [
        { name: 'notifications', description: 'Publish, status, cancel' },
        { name: 'topics', description: 'Topic membership set by the backend' },
        { name: 'admin', description: 'Read-only views of nodes, devices and topics' },
        { name: 'webpush', description: 'Web Push subscriptions and the VAPID key (docs/webpush.md)' },
        { name: 'operations', description: 'Probes and metrics (no API key)' },
      ],
      components: {
        securitySchemes: {
          [API_KEY_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key (HERALD_API_KEYS, the apps file, or POST /v1/admin/keys): `Authorization: Bearer <key>`. Each route needs a scope (docs/tenancy.md).',
          },
          [DEVICE_TOKEN_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              "The device's own token (the one it connects to the nodes with): device routes only.",
          },
        },
      },
    },
    // Shared schemas (HeraldError) keep their $id as their name under components.schemas.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    transform: ({ schema, url }) => {
      if (UNDOCUMENTED.test(url)) return { schema: { ...schema, hide: true }, url };
      if (!url.startsWith('/v1/')) return { schema, url };
      if (url === '/v1/webpush/key') return { schema: { ...schema, security: [] }, url };
      if (url.startsWith('/v1/devices/'))
        return {
          schema: { ...schema, security: [{ [API_KEY_SCHEME]: [] }, { [DEVICE_TOKEN_SCHEME]: [] }] },
          url,
        };
      return { schema: { ...schema, security: [{ [API_KEY_SCHEME]: [] }] }, url };
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
}
