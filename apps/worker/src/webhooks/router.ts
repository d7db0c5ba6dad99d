import type { WebhookEndpoint } from '@herald/config';
import type { WebhookEvent } from '@herald/store';

/** Most notification -> publishing key ids remembered per app (a key id never changes). */
const MAX_CACHED_KEYS = 20_000;

/** Looks up the publishing key of notifications (the `key` field of their status), many at once. */
export type KeyLookup = (ids: readonly string[]) => Promise<(string | undefined)[]>;

/**
 * Routes an app's events to its endpoints (docs/webhooks.md): `notification.*` and `push.failed`
 * to the endpoints of the API key that published the notification (and those of HERALD_WEBHOOKS,
 * which serve every key), `device.*` to every endpoint of the app that wants them. Raw
 * `device.connect` / `device.disconnect` facts and unknown types go nowhere.
 */
export class EventRouter {
  private readonly keys = new Map<string, string>();

  constructor(private readonly lookup: KeyLookup) {}

  async route(
    endpoints: readonly WebhookEndpoint[],
    events: readonly WebhookEvent[],
  ): Promise<Map<WebhookEndpoint, WebhookEvent[]>> {
    const out = new Map<WebhookEndpoint, WebhookEvent[]>();
    if (endpoints.length === 0 || events.length === 0) return out;
    const keyed = endpoints.some((e) => e.keyId !== undefined);
    if (keyed) await this.resolve(events);
    for (const ev of events) {
      const notification = typeof ev.data?.notification === 'string' ? ev.data.notification : undefined;
      const perKey = ev.type.startsWith('notification.') || ev.type === 'push.failed';
      const key = perKey && notification ? this.keys.get(notification) : undefined;
      for (const e of endpoints) {
        if (!(e.events as readonly string[]).includes(ev.type)) continue;
        if (perKey && e.keyId !== undefined && e.keyId !== key) continue;
        let list = out.get(e);
        if (!list) {
          list = [];
          out.set(e, list);
        }
        list.push(ev);
      }
    }
    return out;
  }

  private async resolve(events: readonly WebhookEvent[]): Promise<void> {
    const missing = new Set<string>();
    for (const ev of events) {
      const n = ev.data?.notification;
      if (typeof n === 'string' && !this.keys.has(n)) missing.add(n);
    }
    if (missing.size === 0) return;
    const ids = [...missing];
    const found = await this.lookup(ids);
    if (this.keys.size + ids.length > MAX_CACHED_KEYS) this.keys.clear();
    ids.forEach((id, i) => {
      // Not cached when absent: a direct publish records its key just after its delivery.
      if (found[i] !== undefined) this.keys.set(id, found[i]!);
    });
  }
}

/** Splits events into requests of at most `batch`. */
export function chunks<T>(list: readonly T[], batch: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += batch) out.push(list.slice(i, i + batch));
  return out;
}
