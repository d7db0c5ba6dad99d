import { Probe } from '@herald/stack';
import { afterEach, describe, expect, it } from 'vitest';
import { AppDevice, pool } from '../support/devices.js';
import { loopback, type SystemStack, startSystem } from '../support/system.js';

let sys: SystemStack | undefined;
afterEach(async () => {
  await sys?.teardown();
  sys = undefined;
}, 60_000);

async function connectAll(
  s: SystemStack,
  n: number,
  prefix: string,
  topics: string[] = [],
): Promise<AppDevice[]> {
  const devices = Array.from(
    { length: n },
    (_, i) => new AppDevice(`${prefix}-${i}`, s.wsUrl, () => s.token(`${prefix}-${i}`), loopback(i), topics),
  );
  await pool(devices, 50, (d) => d.client.connect());
  await Promise.all(
    devices.map((d) => d.until(() => topics.every((t) => d.subscribed.has(t)), 'subscribed', 20_000)),
  );
  return devices;
}

function byNode(devices: AppDevice[]): Map<string, AppDevice[]> {
  const m = new Map<string, AppDevice[]>();
  for (const d of devices) m.set(d.node!, [...(m.get(d.node!) ?? []), d]);
  return m;
}

/** The node's open connections, from its `herald_connections` gauge. */
async function connections(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(/^herald_connections(?:\{[^}]*\})? (\d+)$/m);
  return m ? Number(m[1]) : -1;
}

describe('drain of one of three nodes under live traffic', () => {
  it('loses nothing, and its clients reconnect spread over the drain window', async () => {
    const DRAIN_MS = 3000;
    sys = await startSystem({ nodes: 3, env: { HERALD_DRAIN_MS: String(DRAIN_MS) } });
    const s = sys;
    const devices = await connectAll(s, 150, 'drain', ['drain.all']);
    const groups = byNode(devices);
    expect(groups.size).toBe(3);
    const [victimId, victims] = [...groups.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
    const victim = s.nodes.find((n) => n.name === victimId)!;

    const expected = new Map<string, string[]>(devices.map((d) => [d.device, []]));
    const topicIds: string[] = [];
    let publishing = true;
    let n = 0;
    const publisher = (async () => {
      while (publishing && n < 3000) {
        const i = n++;
        const d = devices[(i * 31) % devices.length]!;
        const r = await s.publish(
          i % 4 === 0
            ? { to: { topic: 'drain.all' }, data: { i } }
            : { to: { devices: [d.device] }, data: { i } },
        );
        expect(r.status).toBe(202);
        if (i % 4 === 0) topicIds.push(r.body.id as string);
        else expected.get(d.device)!.push(r.body.id as string);
      }
    })();
    while (n < 200) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    await victim.stop('SIGTERM', DRAIN_MS + 10_000);
    const drainTook = Date.now() - t0;
    expect(victim.process.exitCode).toBe(0);
    const target = n + 200;
    while (n < target) await new Promise((r) => setTimeout(r, 10));
    publishing = false;
    await publisher;

    // Every victim reconnected elsewhere; the disconnects were spread, not all at once.
    await Promise.all(victims.map((d) => d.until(() => d.node !== victimId, 'reconnect elsewhere', 20_000)));
    const times = victims.map((d) => d.disconnects[0]!).sort((a, b) => a - b);
    expect(times[times.length - 1]! - times[0]!).toBeGreaterThan(DRAIN_MS * 0.5);
    const maxInWindow = Math.max(
      ...times.map((t) => times.filter((u) => u >= t && u < t + DRAIN_MS / 10).length),
    );
    expect(maxInWindow).toBeLessThan(victims.length * 0.35);
    expect(drainTook).toBeLessThan(DRAIN_MS + 5000);

    for (const d of devices) {
      const want = new Set([...expected.get(d.device)!, ...topicIds]);
      await d.until(() => [...want].every((id) => d.ids().includes(id)), 'everything', 30_000);
      expect(new Set(d.ids()).size).toBe(d.ids().length);
    }
    await Promise.all(devices.map((d) => d.client.close()));
  }, 120_000);
});

describe('kill -9 of a node with 1,000 clients', () => {
  it('reconnects every client within a bound, and the other nodes stay under their caps', async () => {
    const CAP = 700;
    sys = await startSystem({
      nodes: 3,
      env: { HERALD_MAX_CONNECTIONS: String(CAP), HERALD_HEARTBEAT_MS: '2000' },
    });
    const s = sys;
    const devices = await connectAll(s, 1000, 'k9');
    const groups = byNode(devices);
    const [victimId, victims] = [...groups.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
    const t0 = Date.now();
    await s.nodes.find((n) => n.name === victimId)!.kill9();
    await Promise.all(
      victims.map((d) => d.until(() => d.node !== victimId && d.welcomes.at(-1)! > t0, 'reconnect', 30_000)),
    );
    const took = Date.now() - t0;
    expect(took).toBeLessThan(30_000);
    for (const node of s.nodes.filter((x) => x.name !== victimId)) {
      expect(await connections(node.url)).toBeLessThanOrEqual(CAP);
    }
    // All 1,000 are live: a broadcast reaches every one.
    const r = await s.publish({ to: { broadcast: true }, data: 'all' });
    await Promise.all(
      devices.map((d) => d.until(() => d.ids().includes(r.body.id as string), 'broadcast', 20_000)),
    );
    await pool(devices, 100, (d) => d.client.close());
  }, 120_000);
});

/** The node each of `n` loopback source addresses lands on through the balancer (a fresh hello each). */
function landings(s: SystemStack, n: number): Promise<string[]> {
  return pool(
    Array.from({ length: n }, (_, i) => i),
    50,
    async (i) => {
      const p = await Probe.open(s.wsUrl, { localAddress: loopback(i) });
      p.send({ type: 'hello', token: await s.token(`ch-${i}`) });
      const node = (await p.frame('welcome', 10_000)).node as string;
      p.close();
      return node;
    },
  );
}

describe('consistent hashing', () => {
  it('removing one of three nodes moves only that node’s clients (about a third)', async () => {
    sys = await startSystem({ nodes: 3 });
    const s = sys;
    const N = 300;
    const first = await landings(s, N);
    const counts = new Map<string, number>();
    for (const n of first) counts.set(n, (counts.get(n) ?? 0) + 1);
    expect(counts.size).toBe(3);
    const [removed] = [...counts.entries()].sort((a, b) => b[1] - a[1])[1]!; // the median node
    await s.removeNode(removed);
    const second = await landings(s, N);
    let moved = 0;
    for (let i = 0; i < N; i++) {
      if (first[i] === removed) expect(second[i]).not.toBe(removed);
      else expect(second[i], `client ${i} moved although its node stayed`).toBe(first[i]);
      if (first[i] !== second[i]) moved++;
    }
    const share = moved / N;
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.5);
  }, 120_000);
});
