/**
 * `@herald/client/webpush`: the page side of Web Push (docs/webpush.md), kept out of the main
 * entry so the client bundle does not grow. `registerWebPush()` subscribes the browser with the
 * API's VAPID key and registers the subscription for the device; `pushedIds()` tells the page
 * which notifications its service worker already showed, so the app can skip them when the
 * client then receives them over the socket (same ids).
 */
import type { PushMessage } from '@herald/protocol';
import { readPushed } from './pushed.js';

export type { PushMessage };

/** What `subscription.toJSON()` gives. */
export interface PushSubscriptionJson {
  endpoint: string;
  expirationTime?: number | null;
  keys: { p256dh: string; auth: string };
}

/** The parts of ServiceWorkerRegistration used here (no DOM lib in this package). */
export interface PushRegistrationLike {
  pushManager: {
    getSubscription(): Promise<PushSubscriptionLike | null>;
    subscribe(o: {
      userVisibleOnly: boolean;
      applicationServerKey: Uint8Array<ArrayBuffer>;
    }): Promise<PushSubscriptionLike>;
  };
  getNotifications?(): Promise<{ data?: unknown }[]>;
}

export interface PushSubscriptionLike {
  options?: { applicationServerKey?: ArrayBuffer | null };
  toJSON(): unknown;
  unsubscribe(): Promise<boolean>;
}

export interface RegisterWebPushOptions {
  /** Herald API base URL, e.g. https://herald.example.com. */
  apiUrl: string;
  device: string;
  /**
   * The device's app (docs/tenancy.md), for `GET /v1/webpush/key?app=`: an app may have its own
   * VAPID key. Default: `default`. The registration itself is the token's app.
   */
  app?: string;
  /** The device token (the one the client connects with), or a function giving a fresh one. */
  token: string | (() => string | Promise<string>);
  /** Default: `navigator.serviceWorker.ready`. */
  registration?: PushRegistrationLike;
  /**
   * Register this subscription instead of subscribing (a subscription made elsewhere, or in
   * tests where the browser has no push service to subscribe with).
   */
  subscription?: PushSubscriptionJson;
  fetch?: typeof fetch;
}

function b64urlBytes(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function sameBytes(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

async function ok(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  let code = '';
  try {
    code = ((await res.json()) as { code?: string }).code ?? '';
  } catch {
    // not JSON
  }
  throw new Error(`${what}: HTTP ${res.status}${code ? ` ${code}` : ''}`);
}

async function defaultRegistration(): Promise<PushRegistrationLike> {
  const sw = (globalThis as { navigator?: { serviceWorker?: { ready: Promise<PushRegistrationLike> } } })
    .navigator?.serviceWorker;
  if (!sw) throw new Error('registerWebPush: no service worker support here');
  return sw.ready;
}

/**
 * Subscribes (or reuses the browser's subscription when it was made with the same key) and
 * registers it for the device: `PUT /v1/devices/:device/webpush` with the device token. Call it
 * on every start: registering again refreshes the subscription's retention.
 */
export async function registerWebPush(o: RegisterWebPushOptions): Promise<PushSubscriptionJson> {
  const f = o.fetch ?? fetch;
  const base = o.apiUrl.replace(/\/+$/, '');
  let json = o.subscription;
  if (!json) {
    const query = o.app ? `?app=${encodeURIComponent(o.app)}` : '';
    const key = await ok(await f(`${base}/v1/webpush/key${query}`), 'GET /v1/webpush/key');
    const bytes = b64urlBytes(((await key.json()) as { publicKey: string }).publicKey);
    const reg = o.registration ?? (await defaultRegistration());
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameBytes(sub.options?.applicationServerKey, bytes)) {
      await sub.unsubscribe();
      sub = null;
    }
    sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes });
    json = sub.toJSON() as PushSubscriptionJson;
  }
  const token = typeof o.token === 'function' ? await o.token() : o.token;
  await ok(
    await f(`${base}/v1/devices/${encodeURIComponent(o.device)}/webpush`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint: json.endpoint, keys: json.keys }),
    }),
    'PUT /v1/devices/:device/webpush',
  );
  return json;
}

/** Removes the device's subscription of this browser (or every one of the device without `endpoint`). */
export async function unregisterWebPush(
  o: Omit<RegisterWebPushOptions, 'subscription' | 'registration'> & { endpoint?: string },
): Promise<void> {
  const f = o.fetch ?? fetch;
  const token = typeof o.token === 'function' ? await o.token() : o.token;
  await ok(
    await f(`${o.apiUrl.replace(/\/+$/, '')}/v1/devices/${encodeURIComponent(o.device)}/webpush`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(o.endpoint ? { body: JSON.stringify({ endpoint: o.endpoint }) } : {}),
    }),
    'DELETE /v1/devices/:device/webpush',
  );
}

/**
 * Ids of notifications the service worker module showed (recorded by it, and any still on
 * screen): skip these when the client delivers them, and the app shows each notification once.
 */
export async function pushedIds(registration?: PushRegistrationLike): Promise<Set<string>> {
  const ids = new Set(await readPushed());
  const shown = (await registration?.getNotifications?.()) ?? [];
  for (const n of shown) {
    const id = (n.data as Partial<PushMessage> | undefined)?.id;
    if (typeof id === 'string') ids.add(id);
  }
  return ids;
}
