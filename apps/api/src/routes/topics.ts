import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Delivery } from '@herald/store';
import type { FastifyRequest } from 'fastify';
import { errorResponses, NoContent, TopicDeviceParams } from '../schemas.js';

export interface TopicRoutesOptions {
  /** The store's delivery door: membership, the device's cursor and the doorbell to its nodes. */
  delivery: Delivery;
}

/**
 * Topic membership set by the backend, for devices online or not, in the app of the request's
 * key (its devices and topics: docs/tenancy.md).
 */
export const topicRoutes: FastifyPluginAsyncTypebox<TopicRoutesOptions> = async (app, { delivery: base }) => {
  const tags = ['topics'];
  const of = (req: FastifyRequest): Delivery => (req.tenant ? base.forKeys(req.tenant.keys) : base);
  const response = { 204: NoContent, ...errorResponses(400, 401, 503) };
  app.put(
    '/topics/:topic/devices/:device',
    {
      schema: {
        summary: 'Subscribe a device to a topic',
        description:
          'Durable, for devices online or not; the device gets what is published from now on (an existing position is kept).',
        tags,
        params: TopicDeviceParams,
        response,
      },
    },
    async (req, reply) => {
      // From the topic's head at this request (a cursor the device already has is kept); the
      // nodes holding the device are told, so a live connection follows at once.
      await of(req).subscribe(req.params.device, req.params.topic);
      return reply.code(204).send();
    },
  );

  app.delete(
    '/topics/:topic/devices/:device',
    {
      schema: {
        summary: 'Unsubscribe a device from a topic',
        description: 'Forgets its position in the topic; a connected device stops receiving it at once.',
        tags,
        params: TopicDeviceParams,
        response,
      },
    },
    async (req, reply) => {
      await of(req).unsubscribe(req.params.device, req.params.topic);
      return reply.code(204).send();
    },
  );
};
