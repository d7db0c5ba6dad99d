import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ApiConfig } from '../config.js';
import { bodyHash, type NotificationService } from '../notifications.js';
import { Cancelled, NotificationParams, publishSchema, Status } from '../schemas.js';

export interface NotificationRoutesOptions {
  config: ApiConfig;
  notifications: NotificationService;
}

export const notificationRoutes: FastifyPluginAsyncTypebox<NotificationRoutesOptions> = async (
  app,
  { config, notifications },
) => {
  app.post('/notifications', { schema: publishSchema(config) }, async (req, reply) => {
    const key = req.headers['idempotency-key'];
    const idem = key === undefined ? undefined : { scope: req.apiKeyId, key, bodyHash: bodyHash(req.body) };
    const result = await notifications.publish(req.body, idem);
    return reply.code(202).send(result);
  });

  app.get(
    '/notifications/:id',
    { schema: { params: NotificationParams, response: { 200: Status } } },
    async (req) => notifications.get(req.params.id),
  );

  app.delete(
    '/notifications/:id',
    { schema: { params: NotificationParams, response: { 200: Cancelled } } },
    async (req) => notifications.cancel(req.params.id),
  );
};
