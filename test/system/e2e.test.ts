import { Probe } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { API_KEY, loopback, type SystemStack, startSystem } from '../support/system.js';

// The core end-to-end tests, behind each balancer Herald ships a config for.
describe.each(['nginx', 'haproxy'] as const)('behind %s', (balancer) => {
  let sys: SystemStack;

  beforeAll(async () => {
    sys = await startSystem({ nodes: 3, balancer });
  }, 60_000);
  afterAll(async () => {
    await sys?.teardown();
  }, 30_000);

  /** Connects from successive loopback addresses until the balancer lands a device on each wanted node count. */
  async function connectSpread(devices: string[], user?: string): Promise<Probe[]> {
    return Promise.all(
      devices.map((d, i) => sys.connect(d, { localAddress: loopback(i), ...(user ? { user } : {}) })),
    );
  }

  describe('publish over HTTP, deliver over WebSocket through nginx', () => {
    it('delivers a notification published to a device', async () => {
      const p = await sys.connect('e2e-dev-1');
      const res = await sys.publish({ to: { devices: ['e2e-dev-1'] }, data: { hello: 'world' } });
      expect(res.status).toBe(202);
      expect(res.body.status).toBe('sent');
      const n = await p.frame('notification');
      expect(n).toMatchObject({ stream: 'inbox', seq: 1, id: res.body.id, data: { hello: 'world' } });
      p.close();
    });

    it('delivers to both devices of a user on different nodes', async () => {
      // Pick two source addresses that the consistent hash maps to different nodes.
      const probes: Probe[] = [];
      const nodes = new Set<string>();
      for (let i = 0; i < 40 && nodes.size < 2; i++) {
        const p = await sys.connect(`e2e-u2-dev-${i}`, {
          user: 'e2e-user-2',
          localAddress: loopback(100 + i),
        });
        const node = p.frames[0]!.node as string;
        if (nodes.has(node)) {
          p.close();
          continue;
        }
        nodes.add(node);
        probes.push(p);
      }
      expect(nodes.size).toBe(2);
      const res = await sys.publish({ to: { users: ['e2e-user-2'] }, data: { for: 'user' } });
      expect(res.status).toBe(202);
      for (const p of probes) {
        expect(await p.frame('notification')).toMatchObject({ id: res.body.id, data: { for: 'user' } });
        p.close();
      }
    });

    it('fans a topic out to 200 subscribers over three nodes, once each, in seq order', async () => {
      const devices = Array.from({ length: 200 }, (_, i) => `e2e-sub-${i}`);
      const probes = await connectSpread(devices);
      expect(new Set(probes.map((p) => p.frames[0]!.node)).size).toBe(3);
      for (const p of probes) p.send({ type: 'subscribe', topic: 'e2e.news' });
      await Promise.all(probes.map((p) => p.frame('subscribed')));
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await sys.publish({ to: { topic: 'e2e.news' }, data: { i } });
        expect(res.status).toBe(202);
        ids.push(res.body.id as string);
      }
      await Promise.all(
        probes.map((p) =>
          p.until(() => p.notifications('topic:e2e.news').length >= 5, 'five topic notifications', 15_000),
        ),
      );
      for (const p of probes) {
        const got = p.notifications('topic:e2e.news');
        expect(got.map((f) => f.id)).toEqual(ids);
        const seqs = got.map((f) => f.seq as number);
        expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
      }
      // The status counts the subscribers as targets and every socket write as delivered.
      const status = await fetch(`${sys.apiUrl}/v1/notifications/${ids[4]}`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      const body = (await status.json()) as { counts: { targets: number } };
      expect(body.counts.targets).toBe(200);
      for (const p of probes) p.close();
    }, 60_000);
  });

  describe('bad input gets its documented error and leaves the server running', () => {
    it('answers 401 to a bad API key and 400 to a bad body', async () => {
      const bad = await sys.publish(
        { to: { devices: ['x'] }, data: 1 },
        { authorization: 'Bearer wrong-key-wrong-key' },
      );
      expect(bad.status).toBe(401);
      expect(bad.body.code).toBe('HERALD_UNAUTHORIZED');
      const body = await sys.publish({ to: { planets: ['x'] }, data: 1 });
      expect(body.status).toBe(400);
      expect(body.body).toMatchObject({ code: 'HERALD_BAD_REQUEST' });
      expect(typeof body.body.message).toBe('string');
      const json = await sys.publish('{"to":');
      expect(json.status).toBe(400);
      expect((await sys.publish({ to: { devices: ['ok-dev'] }, data: 1 })).status).toBe(202);
    });

    it('closes 4001 on a bad device token and 1009 on an oversized frame; the node keeps serving', async () => {
      const a = await Probe.open(sys.wsUrl);
      a.send({ type: 'hello', token: 'eyJhbGciOiJIUzI1NiJ9.e30.bad' });
      expect((await a.waitClose()).code).toBe(4001);
      const b = await Probe.open(sys.wsUrl);
      b.send({ type: 'hello', token: 'x'.repeat(70_000) });
      expect((await b.waitClose()).code).toBe(1009);
      const c = await sys.connect('still-fine');
      expect(c.frames[0]!.type).toBe('welcome');
      c.close();
    });

    it('answers 404 to an upgrade on an unknown path and keeps serving', async () => {
      const ws = new WebSocket(sys.wsUrl.replace('/v1/ws', '/nope'));
      const code = await new Promise<number>((resolve) => {
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('error', () => resolve(-1));
      });
      expect(code).toBe(404);
      const c = await sys.connect('still-fine-2');
      c.close();
    });
  });
});

describe.each(['nginx', 'haproxy'] as const)('PROXY protocol from %s', (balancer) => {
  let sys: SystemStack;
  beforeAll(async () => {
    sys = await startSystem({ nodes: 2, balancer, proxyProtocol: true });
  }, 60_000);
  afterAll(async () => {
    await sys?.teardown();
  }, 30_000);

  it('carries the real client address into presence', async () => {
    const p = await sys.connect('pp-dev', { localAddress: '127.0.0.77' });
    const res = await fetch(`${sys.apiUrl}/v1/admin/devices/pp-dev`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const body = (await res.json()) as { nodes: { id: string; address: string | null }[] };
    expect(body.nodes).toEqual([{ id: p.frames[0]!.node, address: '127.0.0.77' }]);
    p.close();
  });

  it('refuses a direct connection to a node that expects the header', async () => {
    const direct = `ws://127.0.0.1:${sys.nodes[0]!.port}/v1/ws`;
    await expect(Probe.open(direct, { timeoutMs: 3000 })).rejects.toThrow();
  });
});
