import type { WebhookEvent } from '@herald/store';

/**
 * The JSON body of a webhook request (docs/webhooks.md):
 * `{"type":"batch","events":[{"id","type","timestamp","data"}...]}`, events in the order they
 * were recorded; `timestamp` is when the event happened (ISO 8601).
 */
export interface WebhookBody {
  type: 'batch';
  events: { id: string; type: string; timestamp: string; data: Record<string, unknown> }[];
}

export function requestBody(events: readonly WebhookEvent[]): string {
  const body: WebhookBody = {
    type: 'batch',
    events: events.map((e) => ({
      id: e.id,
      type: e.type,
      timestamp: new Date(e.ts).toISOString(),
      data: e.data,
    })),
  };
  return JSON.stringify(body);
}
