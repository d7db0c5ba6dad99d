import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, type SystemStack, startSystem } from '../support/system.js';
import { type Browser, ensureChromium, launchChromium, POLL, watchErrors } from './chromium.js';

// The web console and the SDK browser bundle in a real (Debian) Chromium, against a real stack:
// Redis, API, worker, two push nodes behind nginx.
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/browser/', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../../packages/client/dist/herald.browser.js', import.meta.url));

let sys: SystemStack;
let browser: Browser;
let wsUrl: string;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ensureChromium();
  // The stack gives the API the nodes' token secret (for the console's demo device) and the
  // balancer's URL, as `npm start` does.
  [sys, browser] = await Promise.all([startSystem({ nodes: 2 }), launchChromium()]);
  wsUrl = sys.wsUrl;
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await sys?.teardown();
}, 60_000);

/** What the SDK page exposes on `window.herald`. */
interface SdkPageState {
  state: string;
  node: string | null;
  welcomes: string[];
  subscribed: string[];
  received: { stream: string; seq: number; id: string; data: unknown }[];
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });

describe('web console', () => {
  it('publishes to the demo device, which receives it, and shows live status counts', async () => {
    const page = await browser.context.newPage();
    page.setDefaultTimeout(15_000);
    const errors = watchErrors(page);
    try {
      await page.goto(`${sys.apiUrl}/console`);
      await page.waitForSelector('html[data-ready="true"]');
      expect(await page.inputValue('#ws-url')).toBe(wsUrl);
      expect(await page.isHidden('#demo-unavailable')).toBe(true);

      // A wrong key stops the demo device at once, with the API's reason.
      await page.fill('#api-key', 'wrong-key-0123456789abcdef');
      await page.click('#demo-start');
      await page.waitForSelector('#demo-error:text("HERALD_UNAUTHORIZED: invalid API key")');
      await page.waitForSelector('#demo-state:text-is("stopped")');
      expect(await page.isEnabled('#demo-start')).toBe(true);
      expect(errors).toEqual([expect.stringMatching(/status of 401/)]);
      errors.length = 0;

      await page.fill('#api-key', API_KEY);
      await page.click('#demo-start');
      await page.waitForSelector('#demo-state:text-is("open")');
      expect(await page.textContent('#demo-node')).toMatch(/^node-\d$/);
      await shot(page, '01-console-demo-open');

      await page.click('#target-demo');
      expect(await page.inputValue('#target-value')).toBe('console-demo');
      await page.fill('#data', '{"title":"from the browser test","n":1}');
      await page.fill('#ttl', '60');
      await page.click('#publish');
      await page.waitForSelector('#result-id:not(:empty)');
      const id = (await page.textContent('#result-id'))!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);

      const item = page.locator(`#demo-list li[data-id="${id}"]`);
      await item.waitFor();
      expect(await item.textContent()).toContain('{"title":"from the browser test","n":1}');
      expect(await item.textContent()).toMatch(/^inbox #\d+ /);
      // Live status: the page polls GET /v1/notifications/:id until the demo device acked it.
      await expect
        .poll(async () => Number(await page.textContent('#count-delivered')), POLL)
        .toBeGreaterThanOrEqual(1);
      await expect
        .poll(async () => Number(await page.textContent('#count-acked')), POLL)
        .toBeGreaterThanOrEqual(1);
      expect(await page.textContent('#status-state')).toBe('sent');
      expect(await page.textContent('#count-targets')).toBe('1');
      await shot(page, '02-console-published-and-received');

      // A failed publish replaces the previous notification's status with its error.
      await page.fill('#data', 'not json');
      await page.click('#publish');
      await page.waitForSelector('#publish-error:text("data is not valid JSON")');
      expect(await page.isHidden('#result')).toBe(true);
      expect(await page.textContent('#result-id')).toBe('');
      expect(await page.textContent('#count-acked')).toBe('-');
      await page.fill('#data', '{"title":"from the browser test","n":1}');

      // The key stays in this tab's sessionStorage across a reload, and only there.
      const storage = await page.evaluate(() => {
        const g = globalThis as unknown as Record<
          'sessionStorage' | 'localStorage',
          { getItem(k: string): string | null; length: number }
        >;
        return { session: g.sessionStorage.getItem('herald:console:api-key'), local: g.localStorage.length };
      });
      expect(storage).toEqual({ session: API_KEY, local: 0 });
      await page.reload();
      await page.waitForSelector('html[data-ready="true"]');
      expect(await page.inputValue('#api-key')).toBe(API_KEY);

      expect(errors).toEqual([]);

      // A bad target is the API's clear error, on the page (Chromium logs the 400 as well).
      await page.selectOption('#target-kind', 'devices');
      await page.fill('#target-value', 'no spaces allowed');
      await page.click('#publish');
      await page.waitForSelector('#publish-error:not([hidden])');
      expect(await page.textContent('#publish-error')).toMatch(/^HERALD_BAD_REQUEST: to\.devices\[0\]/);
      await shot(page, '03-console-bad-request');
      expect(errors).toEqual([expect.stringMatching(/status of 400/)]);
    } finally {
      await page.close();
    }
  }, 60_000);
});

/** A bare page that loads the SDK bundle and exposes what its client sees on `window.herald`. */
const SDK_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Herald SDK page</title><link rel="icon" href="data:,"></head>
<body><h1>Herald SDK in a page</h1><pre id="log">loading</pre>
<script type="module">
import { HeraldClient } from '/herald.js';
const h = { state: 'new', node: null, welcomes: [], subscribed: [], received: [] };
window.herald = h;
const render = () => { document.getElementById('log').textContent = JSON.stringify(h, null, 2); };
window.startHerald = (url, token, topic) => {
  const c = new HeraldClient({ url, token, topics: [topic], backoff: { initialMs: 100, maxMs: 1000 } });
  c.on('state', (s) => { h.state = s; render(); });
  c.on('welcome', (w) => { h.node = w.node; h.welcomes.push(w.node); render(); });
  c.on('subscribed', (f) => { h.subscribed.push(f.topic); render(); });
  c.on('notification', (n) => { h.received.push({ stream: n.stream, seq: n.seq, id: n.id, data: n.data }); render(); });
  return c.connect().then(() => true);
};
render();
</script></body></html>`;

describe('SDK bundle in a page', () => {
  let server: Server;
  let pageUrl: string;

  beforeAll(async () => {
    const bundle = readFileSync(BUNDLE);
    server = createServer((req, res) => {
      if (req.url === '/herald.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      else if (req.url === '/')
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(SDK_PAGE);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    pageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    server?.closeAllConnections(); // Chromium keeps its connections alive
    await new Promise((resolve) => server?.close(resolve));
  });

  it('reconnects after kill -9 of its node, resumes, and receives what was published meanwhile', async () => {
    const topic = 'browser.resume';
    const page = await browser.context.newPage();
    page.setDefaultTimeout(15_000);
    const errors = watchErrors(page);
    const state = () => page.evaluate(() => (globalThis as unknown as { herald: SdkPageState }).herald);
    const publish = async (n: number) => {
      const res = await sys.publish({ to: { topic }, data: { n }, ttl: 120 });
      expect(res.status).toBe(202);
      return res.body.id as string;
    };
    try {
      await page.goto(pageUrl);
      await page.waitForSelector('#log:text-matches("state")');
      const token = await sys.token('browser-dev-1', 'browser-user-1');
      await page.evaluate(
        ([url, t, tp]) =>
          (globalThis as unknown as { startHerald: (...a: string[]) => Promise<boolean> }).startHerald(
            url!,
            t!,
            tp!,
          ),
        [wsUrl, token, topic],
      );
      await expect.poll(async () => (await state()).subscribed, POLL).toContain(topic);
      const first = await publish(1);
      await expect.poll(async () => (await state()).received.length, POLL).toBe(1);
      const node = (await state()).node;
      const victim = sys.nodes.find((n) => n.name === node);
      expect(victim, `node ${node} of the page`).toBeDefined();
      await shot(page, '04-sdk-page-connected');

      await victim!.kill9();
      const whileDown = await publish(2); // while the page has no connection, or a fresh one
      await expect
        .poll(async () => (await state()).welcomes.length, { timeout: 20_000, interval: 100 })
        .toBeGreaterThanOrEqual(2);
      expect((await state()).welcomes.at(-1)).not.toBe(node); // the victim is dead: the balancer sent the page elsewhere
      await shot(page, '05-sdk-page-reconnected');

      await victim!.restart();
      const afterRestart = await publish(3);
      await expect
        .poll(async () => (await state()).received.length, { timeout: 20_000, interval: 100 })
        .toBe(3);
      const got = (await state()).received;
      // Each exactly once, in order, with contiguous seqs: nothing lost across the crash.
      expect(got.map((n) => n.id)).toEqual([first, whileDown, afterRestart]);
      expect(got.map((n) => n.seq)).toEqual([got[0]!.seq, got[0]!.seq + 1, got[0]!.seq + 2]);
      expect((await state()).state).toBe('open');
      await shot(page, '06-sdk-page-resumed');
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  }, 90_000);
});
