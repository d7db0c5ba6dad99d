import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { DEFAULT_APP } from '@herald/config';
import { mintDeviceToken } from '@herald/token';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiConfig } from '../config.js';
import { DemoUnavailable, NotFound } from '../errors.js';

/** Device and user of the console's demo device. */
export const DEMO_DEVICE = 'console-demo';
/** Lifetime of a demo token; the page asks for a new one when it expires (close 4003). */
export const DEMO_TOKEN_TTL_S = 15 * 60;

export interface ConsoleRoutesOptions {
  config: ApiConfig;
  /** The API-key hook of /v1 (auth.ts): the demo token is for the key's app. */
  authenticate: (req: FastifyRequest, reply?: FastifyReply) => Promise<void>;
}

/** What the page needs before it has a key; nothing secret. */
export interface ConsoleConfig {
  /** HERALD_PUBLIC_WS_URL, or null: the page then suggests ws://<host>:8000/v1/ws. */
  wsUrl: string | null;
  /** Whether POST /console/demo-token can mint tokens (HERALD_TOKEN_SECRET is set). */
  demo: boolean;
  demoDevice: string;
}

const STATIC = new URL('./static/', import.meta.url);
const FILES: Record<string, { file: URL; type: string }> = {
  'console.js': { file: new URL('console.js', STATIC), type: 'text/javascript; charset=utf-8' },
  'console.css': { file: new URL('console.css', STATIC), type: 'text/css; charset=utf-8' },
};

/** Only this origin's scripts and styles; the demo device may open any WebSocket. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Mints an HS256 device token for the demo device, as apps/node expects it. */
export function mintDemoToken(secret: string, ttlS = DEMO_TOKEN_TTL_S, app = DEFAULT_APP): Promise<string> {
  return mintDeviceToken({
    secret,
    device: DEMO_DEVICE,
    user: DEMO_DEVICE,
    expiresIn: ttlS,
    // No `aud` for the app `default`: its tokens stay as they always were.
    ...(app === DEFAULT_APP ? {} : { app }),
  });
}

/** The SDK's browser bundle, from @herald/client's dist (built before the API by turbo). */
function bundlePath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('@herald/client/browser');
  } catch {
    return undefined;
  }
}

/**
 * The web console: a static page and a small vanilla module (`GET /console`), the SDK bundle
 * (`/console/herald.js`), and `POST /console/demo-token` (API key) for the page's demo device.
 * The files are read on first use and kept; nothing here is needed to publish.
 */
export const consoleRoutes: FastifyPluginAsync<ConsoleRoutesOptions> = async (
  app,
  { config, authenticate },
) => {
  const cache = new Map<string, Promise<Buffer>>();
  const load = (key: string, path: string | URL): Promise<Buffer> => {
    let p = cache.get(key);
    if (!p) {
      p = readFile(path);
      // A missing file (not built yet) is retried on the next request.
      p.catch(() => cache.delete(key));
      cache.set(key, p);
    }
    return p;
  };
  const send = (reply: FastifyReply, type: string, body: Buffer | string) =>
    reply
      .header('content-type', type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(body);

  app.get('/console', async (_req, reply) => {
    const html = await load('index.html', new URL('index.html', STATIC));
    reply.header('content-security-policy', CSP).header('x-frame-options', 'DENY');
    return send(reply, 'text/html; charset=utf-8', html);
  });
  app.get('/console/', async (_req, reply) => reply.redirect('/console', 301));

  for (const [name, { file, type }] of Object.entries(FILES))
    app.get(`/console/${name}`, async (_req, reply) => send(reply, type, await load(name, file)));

  app.get('/console/herald.js', async (_req, reply) => {
    const path = bundlePath();
    const body = path ? await load('herald.js', path).catch(() => undefined) : undefined;
    if (!body) throw new NotFound('the SDK browser bundle is not built: run npm run build');
    return send(reply, 'text/javascript; charset=utf-8', body);
  });

  app.get(
    '/console/config',
    async (): Promise<ConsoleConfig> => ({
      wsUrl: config.publicWsUrl || null,
      demo: config.tokenSecret !== '',
      demoDevice: DEMO_DEVICE,
    }),
  );

  app.post('/console/demo-token', { onRequest: authenticate }, async (req, reply) => {
    const { id, tokens } = req.tenant.app;
    if (!tokens.secret)
      throw new DemoUnavailable(
        id === DEFAULT_APP
          ? 'the demo device is unavailable: the API has no HERALD_TOKEN_SECRET'
          : `the demo device is unavailable: app ${id} has no tokens.secret`,
      );
    const token = await mintDemoToken(tokens.secret, DEMO_TOKEN_TTL_S, id);
    reply.header('cache-control', 'no-store');
    return {
      token,
      device: DEMO_DEVICE,
      user: DEMO_DEVICE,
      expiresAt: new Date(Date.now() + DEMO_TOKEN_TTL_S * 1000).toISOString(),
    };
  });
};
