/**
 * Webhook event types a publisher can subscribe an endpoint to (docs/webhooks.md): the one list
 * the apps-file schema (@herald/config), the outbox (@herald/store) and the admin API check
 * against. `device.online` / `device.offline` are debounced by the worker from the raw
 * `device.connect` / `device.disconnect` that nodes record, which are never sent to an endpoint.
 */
export const WEBHOOK_EVENT_TYPES = [
  'notification.delivered',
  'notification.acked',
  'notification.expired',
  'notification.pushed',
  'push.failed',
  'device.online',
  'device.offline',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];
