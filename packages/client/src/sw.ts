/**
 * `@herald/client/sw`: the service worker side of Web Push (docs/webpush.md). Import it in your
 * service worker (a module worker: `navigator.serviceWorker.register('/sw.js', {type: 'module'})`)
 * and call `installHeraldPush(self)`. It shows each push as a notification (title and body from
 * the publish's `push` policy, tagged with the notification id so a repeat replaces rather than
 * stacks), records the id for the page (`pushedIds()` in `@herald/client/webpush`), and focuses
 * or opens a page when the notification is clicked.
 */
import type { PushMessage } from '@herald/protocol';
import { cacheStorage, MAX_PUSHED, PUSHED_CACHE, PUSHED_URL, readPushed } from './pushed.js';

export type { PushMessage };

/** The parts of a service worker's global scope used here (no WebWorker lib in this package). */
export interface ServiceWorkerScopeLike {
  addEventListener(type: 'push' | 'notificationclick', listener: (event: never) => void): void;
  registration: {
    showNotification(title: string, options?: Record<string, unknown>): Promise<void>;
  };
  clients: {
    matchAll(o?: { type?: string; includeUncontrolled?: boolean }): Promise<{ focus?(): Promise<unknown> }[]>;
    openWindow(url: string): Promise<unknown>;
  };
}

export interface PushEventLike {
  data: { json(): unknown } | null;
  waitUntil(p: Promise<unknown>): void;
}

export interface NotificationClickEventLike {
  notification: { close(): void; data?: unknown };
  waitUntil(p: Promise<unknown>): void;
}

export interface HeraldPushOptions {
  /** Title when the push has none. Default 'New notification'. */
  defaultTitle?: string;
  /** Extra showNotification options (icon, badge, ...), or a function of the message. */
  notification?: Record<string, unknown> | ((m: PushMessage) => Record<string, unknown>);
  /** Page opened on click when none is open. Default '/'. */
  openUrl?: string;
}

/** Parses a push; undefined when it is not a Herald push message. */
export function parsePush(event: PushEventLike): PushMessage | undefined {
  try {
    const m = event.data?.json() as PushMessage | undefined;
    return m && typeof m.id === 'string' && typeof m.stream === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Records a shown id for the page (bounded). */
export async function recordPushed(id: string): Promise<void> {
  const caches = cacheStorage();
  if (!caches) return;
  const ids = (await readPushed()).filter((x) => x !== id);
  ids.push(id);
  const body = JSON.stringify(ids.slice(-MAX_PUSHED));
  const R = (globalThis as { Response?: new (b: string, i?: object) => unknown }).Response;
  if (!R) return;
  await (await caches.open(PUSHED_CACHE)).put(
    PUSHED_URL,
    new R(body, { headers: { 'content-type': 'application/json' } }),
  );
}

/** Shows one push as a notification and records its id. */
export async function showPush(
  scope: ServiceWorkerScopeLike,
  m: PushMessage,
  o: HeraldPushOptions = {},
): Promise<void> {
  const extra = typeof o.notification === 'function' ? o.notification(m) : (o.notification ?? {});
  await recordPushed(m.id);
  await scope.registration.showNotification(m.title ?? o.defaultTitle ?? 'New notification', {
    ...(m.body !== undefined ? { body: m.body } : {}),
    tag: m.id,
    data: m,
    ...extra,
  });
}

/** Wires `push` and `notificationclick` on the service worker's global scope. */
export function installHeraldPush(scope: ServiceWorkerScopeLike, o: HeraldPushOptions = {}): void {
  scope.addEventListener('push', (event: PushEventLike) => {
    const m = parsePush(event);
    if (m) event.waitUntil(showPush(scope, m, o));
  });
  scope.addEventListener('notificationclick', (event: NotificationClickEventLike) => {
    event.notification.close();
    event.waitUntil(
      scope.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((pages) => {
        const page = pages.find((p) => p.focus);
        return page?.focus ? page.focus() : scope.clients.openWindow(o.openUrl ?? '/');
      }),
    );
  });
}
