import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { ApiConfig } from '../config.js';
import { BadRequest } from '../errors.js';
import { bodyHash, type NotificationService } from '../notifications.js';
import type { WebhookMark } from '../prepare.js';
import {
  batchSchema,
  Cancelled,
  errorResponses,
  NotificationParams,
  publishSchema,
  Status,
} from '../schemas.js';

export interface NotificationRoutesOptions {
  config: ApiConfig;
  notifications: NotificationService;
}

const tags = ['notifications'];

/** What a publish by the request's key records for its webhook endpoints (docs/webhooks.md), if it has any. */
function hookOf(req: FastifyRequest): WebhookMark | undefined {
  const t = req.tenant;
  if (!t?.app.webhooks) return undefined;
  const mine = t.app.webhooks.filter((w) => w.keyId === undefined || w.keyId === t.keyId);
  if (mine.length === 0) return undefined;
  return { key: t.keyId, expired: mine.some((w) => w.events.includes('notification.expired')) };
}

/** The service of the request's app (set by the auth hook; the service's own app without one). */
function forRequest(notifications: NotificationService, req: FastifyRequest): NotificationService {
  return req.tenant ? notifications.forApp(req.tenant.keys) : notifications;
}

export const notificationRoutes: FastifyPluginAsyncTypebox<NotificationRoutesOptions> = async (
  app,
  { config, notifications },
) => {
  app.post(
    '/notifications',
    {
      schema: {
        summary: 'Publish a notification',
        description:
          'To devices, users, a topic or every device; now or at `deliverAt`. Answers once it is durably accepted: `sent` when the API delivered it itself (direct publish), `queued` or `scheduled` when it is a job for the worker. See docs/api.md.',
        tags,
        ...publishSchema(config),
      },
    },
    async (req, reply) => {
      const key = req.headers['idempotency-key'];
      const idem = key === undefined ? undefined : { scope: req.apiKeyId, key, bodyHash: bodyHash(req.body) };
      const result = await forRequest(notifications, req).publish(req.body, idem, undefined, hookOf(req));
      return reply.code(202).send(result);
    },
  );

  app.post(
    '/notifications/batch',
    {
      schema: {
        summary: 'Publish many notifications',
        description:
          'Up to HERALD_MAX_BATCH publishes in one request, each as for POST /v1/notifications, appended in array order. One invalid item refuses the batch (400/413, nothing accepted). No Idempotency-Key: a 207 says which items to retry. See docs/api.md.',
        tags,
        ...batchSchema(config),
      },
    },
    async (req, reply) => {
      if (req.headers['idempotency-key'] !== undefined)
        throw new BadRequest('Idempotency-Key is not supported on a batch; publish one by one to use it');
      const { complete, results } = await forRequest(notifications, req).publishBatch(
        req.body.notifications,
        undefined,
        hookOf(req),
      );
      return reply.code(complete ? 202 : 207).send({ results });
    },
  );

  app.get(
    '/notifications/:id',
    {
      schema: {
        summary: 'Status of a notification',
        description: 'State and delivery counts; kept until HERALD_STATUS_KEEP_S after it expires.',
        tags,
        params: NotificationParams,
        response: { 200: Status, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (req) => forRequest(notifications, req).get(req.params.id),
  );

  app.delete(
    '/notifications/:id',
    {
      schema: {
        summary: 'Cancel a scheduled notification',
        description:
          'Only while it is `scheduled`; once a worker started sending it the answer is 409 HERALD_ALREADY_SENT.',
        tags,
        params: NotificationParams,
        response: { 200: Cancelled, ...errorResponses(400, 401, 404, 409, 503) },
      },
    },
    async (req) => forRequest(notifications, req).cancel(req.params.id),
  );
};
