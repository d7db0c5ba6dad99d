import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { topicStream } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import { type Devices, encodeDoorbell, type Keys, type Presence, publish, type Streams } from '@herald/store';
import { errorResponses, NoContent, TopicDeviceParams } from '../schemas.js';

export interface TopicRoutesOptions {
  redis: RedisClient;
  keys: Keys;
  devices: Devices;
  streams: Streams;
  presence: Presence;
}

/** Topic membership set by the backend, for devices online or not. */
export const topicRoutes: FastifyPluginAsyncTypebox<TopicRoutesOptions> = async (app, o) => {
  /** Tells the nodes holding the device's sockets, so a live connection follows at once. */
  async function ring(k: 'sub' | 'unsub', device: string, topic: string): Promise<void> {
    const nodes = await o.presence.nodesOf(device);
    if (nodes.length === 0) return;
    const msg = encodeDoorbell({ k, device, topic });
    await Promise.all(nodes.map((node) => publish(o.redis, o.keys.nodeChannel(node), msg)));
  }

  const tags = ['topics'];
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
      const { topic, device } = req.params;
      // Head before subscribing: the device gets everything published after this request began
      // (reading it after could skip an entry appended in between). A cursor the device already
      // has for the topic is kept.
      const head = await o.streams.head(o.keys.topic(topic));
      await o.devices.subscribe(device, topic);
      await o.devices.initCursor(device, topicStream(topic), head);
      await ring('sub', device, topic);
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
      const { topic, device } = req.params;
      await o.devices.unsubscribe(device, topic);
      await ring('unsub', device, topic);
      return reply.code(204).send();
    },
  );
};
