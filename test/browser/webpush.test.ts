import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PushService, vapidKeys } from '../support/push-service.js';
import { API_KEY, type SystemStack, startSystem } from '../support/system.js';
import { type Browser, ensureChromium, launchChromium, POLL, watchErrors } from './chromium.js';

// Web Push in a real (Debian) Chromium: a page registers the SDK's service worker module and its
// device's subscription through registerWebPush(); Herald pushes to the local push service, and
// the decrypted message is handed to the service worker with the DevTools Protocol's
// ServiceWorker.deliverPushMessage (the browser's own push channel needs Google's push service,
// which this machine cannot reach, so the subscription is a synthetic one of the local service
// instead of one from pushManager.subscribe). The worker shows the notification; the page, when
// opened, receives the notification over its socket too and does not show it a second time.
const DIST = (f: string) => fileURLToPath(new URL(`../../packages/client/dist/${f}`, import.meta.url));

let sys: SystemStack;
let browser: Browser;
let push: PushService;
let server: Server;
let origin: string;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Herald Web Push page</title><link rel="icon" href="data:,"></head>
<body><pre id="log"></pre>
<script type="module">
import { HeraldClient } from '/herald.js';
import { registerWebPush, pushedIds } from '/webpush.js';
const app = { shown: [], received: [] };
window.app = app;
window.setup = async (apiUrl, device, token, subscription) => {
  const registration = await navigator.serviceWorker.register('/sw.js', { type: 'module' });
  await navigator.serviceWorker.ready;
  await registerWebPush({ apiUrl, device, token, subscription, registration });
  return true;
};
window.notifications = async () =>
  (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({
    title: n.title, body: n.body, tag: n.tag, id: n.data && n.data.id,
  }));
// The app: notifications its service worker already showed are not shown again.
window.start = async (url, token) => {
  const pushed = await pushedIds(await navigator.serviceWorker.ready);
  const c = new HeraldClient({ url, token, lifecycle: false });
  c.on('notification', (n) => {
    app.received.push(n.id);
    if (!pushed.has(n.id)) app.shown.push(n.id);
  });
  await c.connect();
  return [...pushed];
};
</script></body></html>`;

const SW = `import { installHeraldPush } from '/sw-lib.js';
installHeraldPush(self, { defaultTitle: 'Herald' });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
`;

beforeAll(async () => {
  ensureChromium();
  push = await PushService.start();
  const vapid = vapidKeys();
  [sys, browser] = await Promise.all([
    startSystem({
      nodes: 1,
      env: {
        HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
        HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
        HERALD_VAPID_SUBJECT: 'mailto:ops@herald.test',
        HERALD_WEBPUSH_ALLOW_LOCAL_HTTP: 'true',
      },
    }),
    launchChromium(),
  ]);
  const files: Record<string, [string, Buffer | string]> = {
    '/': ['text/html; charset=utf-8', PAGE],
    '/sw.js': ['text/javascript', SW],
    '/herald.js': ['text/javascript', readFileSync(DIST('herald.browser.js'))],
    '/webpush.js': ['text/javascript', readFileSync(DIST('webpush.js'))],
    '/sw-lib.js': ['text/javascript', readFileSync(DIST('sw.js'))],
  };
  server = createServer((req, res) => {
    const f = files[req.url ?? ''];
    if (f) res.writeHead(200, { 'content-type': f[0] }).end(f[1]);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await browser.context.grantPermissions(['notifications'], { origin });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await sys?.teardown();
  await push?.stop();
}, 60_000);

type AppWindow = {
  app: { shown: string[]; received: string[] };
  setup(...a: unknown[]): Promise<boolean>;
  notifications(): Promise<{ title: string; body: string; tag: string; id: string }[]>;
  start(url: string, token: string): Promise<string[]>;
};

describe('Web Push in Chromium', () => {
  it('the service worker shows the push; the page, opened, gets it over its socket and does not show it twice', async () => {
    const device = 'chromium-wp-1';
    const token = await sys.token(device);
    const sub = push.subscribe();
    const page = await browser.context.newPage();
    page.setDefaultTimeout(15_000);
    const errors = watchErrors(page);
    try {
      await page.goto(`${origin}/`);
      // The SDK registers the subscription from the page, cross-origin, with the device token.
      expect(
        await page.evaluate(([api, d, t, s]) => (globalThis as unknown as AppWindow).setup(api, d, t, s), [
          sys.apiUrl,
          device,
          token,
          { endpoint: sub.endpoint, keys: sub.keys },
        ] as const),
      ).toBe(true);
      const view = await fetch(`${sys.apiUrl}/v1/admin/devices/${device}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(((await view.json()) as { webpush: { host: string }[] }).webpush).toEqual([
        expect.objectContaining({ host: new URL(push.origin).host }),
      ]);

      // The device is away (no connection): Herald pushes after `after`.
      const res = await sys.publish({
        to: { devices: [device] },
        data: { order: 7 },
        push: { after: 1, title: 'Order 7', body: 'Shipped' },
      });
      expect(res.status).toBe(202);
      const id = res.body.id as string;
      await push.waitFor(() => push.pushes(sub.id).length === 1, 'the push', 10_000);
      const message = push.pushes(sub.id)[0]!.text;

      // The browser's push channel: DevTools hands the decrypted message to the service worker.
      const cdp = await browser.context.newCDPSession(page);
      const registrationId = new Promise<string>((resolve) => {
        cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
          const r = e.registrations.find((x) => x.scopeURL.startsWith(origin) && !x.isDeleted);
          if (r) resolve(r.registrationId);
        });
      });
      await cdp.send('ServiceWorker.enable');
      const shown = () => page.evaluate(() => (globalThis as unknown as AppWindow).notifications());
      // Handed over again (at most 3 times) when nothing is shown within 5 s: once in about ten
      // CI runs the first hand-over showed nothing for 15 s (the worker being restarted by
      // DevTools, not reproduced alone). A push service retries as well, and a second showing of
      // the same message replaces the first (its tag is the notification id), so the check
      // below, exactly one, still holds.
      for (let attempt = 1; ; attempt++) {
        await cdp.send('ServiceWorker.deliverPushMessage', {
          origin: `${origin}/`,
          registrationId: await registrationId,
          data: message,
        });
        try {
          await expect.poll(async () => (await shown()).length, { timeout: 5000, interval: 100 }).toBe(1);
          break;
        } catch (err) {
          if (attempt >= 3) throw err;
        }
      }
      await expect.poll(shown, POLL).toEqual([{ title: 'Order 7', body: 'Shipped', tag: id, id }]);

      // The app opens: the client resumes and gets the same notification over its socket; the
      // app does not show it again. A later one (no push) is shown as usual.
      const pushed = await page.evaluate(([url, t]) => (globalThis as unknown as AppWindow).start(url, t), [
        sys.wsUrl,
        token,
      ] as const);
      expect(pushed).toContain(id);
      const app = () => page.evaluate(() => (globalThis as unknown as AppWindow).app);
      await expect.poll(async () => (await app()).received, POLL).toEqual([id]);
      const next = await sys.publish({ to: { devices: [device] }, data: { order: 8 } });
      await expect.poll(async () => (await app()).received, POLL).toEqual([id, next.body.id]);
      expect((await app()).shown).toEqual([next.body.id]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 90_000);
});
