import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SystemStack, startSystem } from '../support/system.js';
import { type Browser, ensureChromium, launchChromium } from './chromium.js';

// Debian Chromium's own EventSource (no SDK) against two push nodes behind nginx: it receives,
// and after kill -9 of its node its automatic reconnect (Last-Event-ID) resumes exactly.
let sys: SystemStack;
let browser: Browser;
let server: Server;
let pageUrl: string;

/** A page on another origin than the nodes: EventSource goes cross-origin, as on a real site. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>sse</title><script>
window.got = []; window.welcomes = []; window.errors = 0;
window.start = (url, withCredentials = false) => {
  const es = new EventSource(url, { withCredentials });
  es.addEventListener('welcome', (e) => window.welcomes.push(JSON.parse(e.data).node));
  es.addEventListener('notification', (e) => window.got.push({ ...JSON.parse(e.data), lastEventId: e.lastEventId }));
  es.onerror = () => { window.errors++; };
  window.es = es;
};
</script>`;

beforeAll(async () => {
  ensureChromium();
  server = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  // The page's origin is listed, so the token cookie may cross to the nodes (credentials).
  const env = { HERALD_ALLOWED_ORIGINS: pageUrl.slice(0, -1) };
  [sys, browser] = await Promise.all([startSystem({ nodes: 2, env }), launchChromium()]);
}, 900_000);

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await sys?.teardown();
}, 60_000);

interface Got {
  stream: string;
  seq: number;
  id: string;
  lastEventId: string;
}

describe("Chromium's native EventSource through nginx", () => {
  it('receives, and resumes exactly on another node after kill -9 of its own', async () => {
    const page = await browser.context.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(pageUrl);
    const base = sys.wsUrl.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
    const token = await sys.token('es-1');
    await page.evaluate(
      (u) => (globalThis as unknown as { start(u: string): void }).start(u),
      `${base}/v1/sse?token=${token}`,
    );
    await page.waitForFunction(() => (globalThis as unknown as { welcomes: string[] }).welcomes.length === 1);
    const [victim] = await page.evaluate(() => (globalThis as unknown as { welcomes: string[] }).welcomes);

    const N = 40;
    for (let i = 0; i < N / 2; i++)
      expect((await sys.publish({ to: { devices: ['es-1'] }, data: { i } })).status).toBe(202);
    await page.waitForFunction((n) => (globalThis as unknown as { got: unknown[] }).got.length >= n, N / 2);
    await sys.nodes.find((n) => n.name === victim)!.kill9();
    for (let i = N / 2; i < N; i++)
      expect((await sys.publish({ to: { devices: ['es-1'] }, data: { i } })).status).toBe(202);

    await page.waitForFunction((n) => (globalThis as unknown as { got: unknown[] }).got.length >= n, N, {
      timeout: 20_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    const state = await page.evaluate(() => {
      const w = globalThis as unknown as { got: Got[]; welcomes: string[]; errors: number };
      return { got: w.got, welcomes: w.welcomes, errors: w.errors };
    });
    expect(state.welcomes).toHaveLength(2);
    expect(state.welcomes[1]).not.toBe(victim);
    expect(state.errors).toBeGreaterThanOrEqual(1);
    expect(state.got.map((g) => g.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // Each event's id (the 2. text form) has the inbox at that event's seq.
    for (const g of state.got) expect(g.lastEventId).toMatch(new RegExp(`^2\\.(.+,)?inbox:${g.seq}(,|$)`));
    await page.evaluate(() => (globalThis as unknown as { es: { close(): void } }).es.close());
    await page.close();
  }, 60_000);

  it('opens a stream with the token cookie (POST /v1/cookie), no token in the URL', async () => {
    const page = await browser.context.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(pageUrl);
    const base = sys.wsUrl.replace(/^ws/, 'http').replace(/\/v1\/ws$/, '');
    const token = await sys.token('es-cookie');
    const status = await page.evaluate(
      async ([b, t]) =>
        (
          await fetch(`${b}/v1/cookie`, {
            method: 'POST',
            headers: { authorization: `Bearer ${t}` },
            credentials: 'include',
          })
        ).status,
      [base, token] as const,
    );
    expect(status).toBe(204);
    await page.evaluate(
      ([u]) => (globalThis as unknown as { start(u: string, c: boolean): void }).start(u, true),
      [`${base}/v1/sse`] as const,
    );
    await page.waitForFunction(() => (globalThis as unknown as { welcomes: string[] }).welcomes.length === 1);
    expect((await sys.publish({ to: { devices: ['es-cookie'] }, data: { c: 1 } })).status).toBe(202);
    await page.waitForFunction(() => (globalThis as unknown as { got: unknown[] }).got.length === 1);
    // Page scripts cannot read it (HttpOnly).
    expect(
      await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie),
    ).toBe('');
    await page.evaluate(() => (globalThis as unknown as { es: { close(): void } }).es.close());
    await page.close();
  }, 60_000);
});
