import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex } from '@herald/config';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerApp } from '../src/app.js';
import { silent, startRedis, type TestRedis, until, workerConfig } from './helpers.js';

// The presence debouncer runs only for apps whose endpoints want device.online / device.offline
// (an idle step costs each app about 4 Redis commands every 250 ms), and follows apps reloads.

let server: TestRedis;
let redis: Redis;
const closers: (() => Promise<unknown>)[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  redis?.disconnect();
  await server?.stop();
});

const SECRET = `whsec_${Buffer.from('0123456789abcdef01234567').toString('base64')}`;
const hook = (events: string[]) => ({ id: 'h', url: 'http://127.0.0.1:9/hook', events, secret: SECRET });

/** The consumer groups on an outbox (none when the stream does not exist). */
async function groups(key: string): Promise<string[]> {
  if ((await redis.exists(key)) === 0) return [];
  const info = (await redis.xinfo('GROUPS', key)) as unknown[][];
  return info.map((g) => String(g[1])).sort();
}

const config = (prefix: string, env: Record<string, string>) => workerConfig(server.url, prefix, env);

describe('presence debouncer gate', () => {
  it('is off without endpoints for device events, on with them (HERALD_WEBHOOKS)', async () => {
    const off = await startWorkerApp(
      config('g1', { HERALD_WEBHOOKS: JSON.stringify([hook(['notification.delivered'])]) }),
      silent,
    );
    closers.push(() => off.close());
    expect(await off.presence.step()).toBe(0);
    // The sender's group appears (its pump runs), the debouncer's never does.
    await until('sender group', async () =>
      (await groups('g1:{wh}:events')).includes('webhooks') ? true : undefined,
    );
    expect(await groups('g1:{wh}:events')).toEqual(['webhooks']);

    const on = await startWorkerApp(
      config('g2', { HERALD_WEBHOOKS: JSON.stringify([hook(['device.offline'])]) }),
      silent,
    );
    closers.push(() => on.close());
    await on.presence.step();
    expect(await groups('g2:{wh}:events')).toEqual(['presence', 'webhooks']);
  });

  it('follows the apps file: an app starts being debounced when an endpoint of it wants device events', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-gate-'));
    dirs.push(dir);
    const file = join(dir, 'apps.json');
    const write = (events: string[]) =>
      writeFileSync(
        file,
        JSON.stringify({
          apps: [
            {
              id: 'shop',
              tokens: { secret: 's'.repeat(20) },
              keys: [
                {
                  id: 'k1',
                  sha256: sha256Hex('k1-0123456789abcdef'),
                  scopes: ['publish'],
                  webhooks: [hook(events)],
                },
              ],
            },
          ],
        }),
      );
    write(['notification.acked']);
    const app = await startWorkerApp(config('g3', { HERALD_APPS_FILE: file }), silent);
    closers.push(() => app.close());
    const outbox = 'g3:a:shop:{wh}:events';
    expect(await app.presence.step()).toBe(0);
    await until('sender group', async () => ((await groups(outbox)).includes('webhooks') ? true : undefined));
    expect(await groups(outbox)).toEqual(['webhooks']);

    write(['notification.acked', 'device.online']);
    await until(
      'presence group after the reload',
      async () => ((await groups(outbox)).includes('presence') ? true : undefined),
      10_000,
    );
  });
});
