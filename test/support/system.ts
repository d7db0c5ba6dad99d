import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Probe, type Stack, type StackOptions, startStack } from '@herald/stack';
import { mintDeviceToken } from '@herald/token';

export const API_KEY = 'test-api-key-0123456789abcdef';
export const TOKEN_SECRET = 'test-token-secret-0123456789';

export interface SystemStack extends Stack {
  dir: string;
  publish(
    body: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  token(device: string, user?: string, topics?: string[]): Promise<string>;
  /** Connects through nginx from a given loopback source address and says hello. */
  connect(
    device: string,
    opts?: { user?: string; cursors?: Record<string, number>; localAddress?: string },
  ): Promise<Probe>;
  teardown(): Promise<void>;
}

/** Starts Redis, API, worker, N nodes and nginx in a temp dir, all on 127.0.0.1 and free ports. */
export async function startSystem(opts: Partial<StackOptions> = {}): Promise<SystemStack> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-sys-'));
  const stack = await startStack({
    dataDir: path.join(dir, 'data'),
    logDir: path.join(process.env.HERALD_TEST_LOGS ?? dir, 'logs'),
    apiKeys: [API_KEY],
    tokenSecret: TOKEN_SECRET,
    logLevel: 'warn',
    ...opts,
    env: { HERALD_FLUSH_MS: '50', ...opts.env },
  });
  const sys: SystemStack = Object.assign(stack, {
    dir,
    async publish(body: unknown, headers: Record<string, string> = {}) {
      const res = await fetch(`${stack.apiUrl}/v1/notifications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    token(device: string, user = `user-of-${device}`, topics?: string[]) {
      return mintDeviceToken({ secret: TOKEN_SECRET, device, user, ...(topics ? { topics } : {}) });
    },
    async connect(
      device: string,
      o: { user?: string; cursors?: Record<string, number>; localAddress?: string } = {},
    ) {
      const p = await Probe.open(stack.wsUrl, o.localAddress ? { localAddress: o.localAddress } : {});
      p.send({ type: 'hello', token: await sys.token(device, o.user), cursors: o.cursors });
      await p.frame('welcome', 10_000);
      return p;
    },
    async teardown() {
      try {
        await stack.stop();
      } finally {
        if (!process.env.HERALD_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
      }
    },
  });
  return sys;
}

/** Loopback source address number i (127.0.0.2 ...), so the balancer's address hash spreads clients. */
export function loopback(i: number): string {
  return `127.0.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}
