import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type HaproxyHandle,
  type NginxHandle,
  PROXY_V2_LOCAL,
  rawHttpGet,
  redisPing,
  type Stack,
  startStack,
} from '../src/index.js';
import { pidAlive, tempDir } from './helpers.js';

// Stand-in apps (the real ones are tested by the system tests in test/).
const fake = fileURLToPath(new URL('./fixtures/fake-app.mjs', import.meta.url));

async function getJson(url: string): Promise<Record<string, string>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, string>;
}

describe('startStack (with stand-in apps)', () => {
  // nginx by default: the handle is typed as NginxHandle.
  let stack: Stack<NginxHandle> | undefined;
  afterAll(async () => {
    await stack?.stop();
  });

  it('starts redis, worker, api, nodes and nginx, wires env, restarts, scales and stops', async () => {
    const dir = tempDir('stack');
    stack = await startStack({
      nodes: 2,
      dataDir: `${dir}/data`,
      logDir: `${dir}/logs`,
      apiKeys: ['k1', 'k2'],
      tokenSecret: 'shh',
      env: { EXTRA: 'yes' },
      scripts: { api: fake, worker: fake, node: fake },
    });
    expect(stack.redis).not.toBeNull();
    await expect(redisPing('127.0.0.1', stack.redis!.port)).resolves.toBe(true);
    expect(stack.wsUrl).toBe(`ws://127.0.0.1:${stack.nginx.port}/v1/ws`);
    expect(stack.balancer).toBe(stack.nginx);
    expect(stack.balancer.kind).toBe('nginx');
    expect(stack.nginx.errorLog).toMatch(/nginx-error\.log$/);
    expect(stack.nodes.map((n) => n.name)).toEqual(['node-1', 'node-2']);

    const apiEnv = await getJson(`${stack.apiUrl}/env`);
    expect(apiEnv).toMatchObject({
      HERALD_API_KEYS: 'k1,k2',
      REDIS_URL: stack.redisUrl,
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: String(stack.api.port),
      HERALD_LOG_LEVEL: 'info',
      EXTRA: 'yes',
    });
    const nodeEnv = await getJson(`${stack.nodes[1]!.url}/env`);
    expect(nodeEnv).toMatchObject({ HERALD_NODE_ID: 'node-2', HERALD_TOKEN_SECRET: 'shh', EXTRA: 'yes' });
    await getJson(`${stack.worker.url}/readyz`);

    // HTTP through nginx reaches one of the nodes
    const viaNginx = await getJson(`${stack.nginx.url('127.0.0.1', 'http')}/readyz`);
    expect(['node-1', 'node-2']).toContain(viaNginx.name);

    // restart keeps the port
    const node1 = stack.nodes[0]!;
    const oldPid = node1.pid;
    await node1.restart();
    expect(node1.pid).not.toBe(oldPid);
    expect(pidAlive(oldPid)).toBe(false);
    await getJson(`${node1.url}/readyz`);

    // scale out and in
    const node3 = await stack.addNode();
    expect(node3.name).toBe('node-3');
    expect(stack.nginx.upstreams.map((u) => u.port)).toContain(node3.port);
    await stack.removeNode('node-1');
    expect(stack.nodes.map((n) => n.name)).toEqual(['node-2', 'node-3']);
    expect(stack.nginx.upstreams.map((u) => u.port)).not.toContain(node1.port);

    const pids = [
      stack.api.pid,
      stack.worker.pid,
      stack.nginx.pid,
      stack.redis!.pid,
      ...stack.nodes.map((n) => n.pid),
    ];
    await Promise.all([stack.stop(), stack.stop()]);
    await stack.stop();
    for (const pid of pids) expect(pidAlive(pid)).toBe(false);
  });

  it('fails cleanly when an app cannot become ready', async () => {
    const dir = tempDir('stack-fail');
    await expect(
      startStack({
        nodes: 1,
        dataDir: `${dir}/data`,
        logDir: `${dir}/logs`,
        apiKeys: ['k'],
        tokenSecret: 's',
        readyTimeoutMs: 5000,
        scripts: { api: fake, worker: fake, node: `${dir}/missing.mjs` },
      }),
    ).rejects.toThrow(/missing\.mjs not found/);
  });
});

async function getJsonRaw(port: number, urlPath: string, proxied: boolean): Promise<Record<string, unknown>> {
  const res = await rawHttpGet('127.0.0.1', port, urlPath, {
    prefix: proxied ? PROXY_V2_LOCAL : undefined,
    timeoutMs: 3000,
  });
  expect(res.status).toBe(200);
  return JSON.parse(res.body) as Record<string, unknown>;
}

describe.each(['haproxy', 'nginx'] as const)(
  'startStack with %s and proxyProtocol (stand-in apps)',
  (kind) => {
    let stack: Stack | undefined;
    afterAll(async () => {
      await stack?.stop();
    });

    it('puts the balancer in front, tells the nodes to expect PROXY headers, scales and stops', async () => {
      const dir = tempDir(`stack-${kind}`);
      stack = await startStack({
        nodes: 2,
        balancer: kind,
        proxyProtocol: true,
        dataDir: `${dir}/data`,
        logDir: `${dir}/logs`,
        apiKeys: ['k'],
        tokenSecret: 's',
        scripts: { api: fake, worker: fake, node: fake },
        haproxy: { checkIntervalMs: 200 },
      });
      const lb = stack.balancer;
      expect(lb.kind).toBe(kind);
      expect(stack.nginx).toBe(lb);
      expect(lb.proxyProtocol).toBe(true);
      expect(stack.wsUrl).toBe(`ws://127.0.0.1:${lb.port}/v1/ws`);
      expect(lb.confPath.startsWith(`${dir}/data/${kind}/`)).toBe(true);

      // Only the nodes get HERALD_PROXY_PROTOCOL (the stand-in node then drops header-less connections).
      const node2 = stack.nodes[1]!;
      expect(await getJsonRaw(node2.port, '/env', true)).toMatchObject({
        HERALD_NODE_ID: 'node-2',
        HERALD_PROXY_PROTOCOL: 'true',
      });
      await expect(rawHttpGet('127.0.0.1', node2.port, '/env', { timeoutMs: 3000 })).rejects.toThrow();
      expect(await getJson(`${stack.apiUrl}/env`)).not.toHaveProperty('HERALD_PROXY_PROTOCOL');

      // Through the balancer, a node sees the client's address in a PROXY header (v2 HAProxy, v1 nginx).
      const who = await getJsonRaw(lb.port, '/whoami', false);
      expect(['node-1', 'node-2']).toContain(who.name);
      expect(who).toMatchObject({ proxy: kind === 'haproxy' ? 'v2' : 'v1', src: '127.0.0.1' });

      // Scale out and in through reloads.
      const node3 = await stack.addNode();
      expect(node3.env.HERALD_PROXY_PROTOCOL).toBe('true');
      expect(lb.upstreams.map((u) => u.port)).toContain(node3.port);
      await stack.removeNode('node-1');
      expect(lb.upstreams.map((u) => u.port)).toEqual([stack.nodes[0]!.port, node3.port]);
      const after = await getJsonRaw(lb.port, '/whoami', false);
      expect(['node-2', 'node-3']).toContain(after.name);

      const workers = kind === 'haproxy' ? (await (lb as HaproxyHandle).procs()).workers : [];
      const pids = [lb.pid, ...workers, stack.api.pid, stack.worker.pid, ...stack.nodes.map((n) => n.pid)];
      await stack.stop();
      for (const pid of pids) expect(pidAlive(pid)).toBe(false);
    });
  },
);
