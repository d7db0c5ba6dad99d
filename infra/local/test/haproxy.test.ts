import { once } from 'node:events';
import fs from 'node:fs';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type HaproxyHandle,
  type HaproxyServerState,
  haproxyServerIds,
  rawHttpGet,
  renderHaproxyConf,
  startHaproxy,
  type Upstream,
  waitFor,
} from '../src/index.js';
import {
  connectFrom,
  type HttpBackend,
  httpBackend,
  loopback,
  type ProxyBackend,
  proxyBackend,
  requestOn,
} from './backends.js';
import { pidAlive, tempDir } from './helpers.js';

const local = (port: number): Upstream => ({ host: '127.0.0.1', port });

/** Which backend answers a new connection from `source`. */
async function via(haproxy: HaproxyHandle, source = '127.0.0.1'): Promise<string> {
  const res = await rawHttpGet('127.0.0.1', haproxy.port, '/', { localAddress: source, timeoutMs: 5000 });
  expect(res.status).toBe(200);
  return res.body;
}

/** Backend name per source address, for `count` sources. */
async function mapping(haproxy: HaproxyHandle, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(await via(haproxy, loopback(i)));
  return out;
}

/** Waits (bounded) until the server for `port` reports a status matching `status`. */
async function serverStatus(
  haproxy: HaproxyHandle,
  port: number,
  status: RegExp,
  timeoutMs = 10_000,
): Promise<HaproxyServerState> {
  let last: HaproxyServerState | undefined;
  await waitFor(
    async () => {
      last = (await haproxy.servers()).find((s) => s.port === port);
      return last !== undefined && status.test(last.status);
    },
    { timeoutMs, intervalMs: 100, what: `server :${port} to be ${status}` },
  );
  return last!;
}

describe('renderHaproxyConf', () => {
  const upstreams = [local(9001), local(9002)];

  it('fills every placeholder with the L4 settings', () => {
    const conf = renderHaproxyConf({
      upstreams,
      listen: '127.0.0.1:9000',
      prefix: '/tmp/herald-haproxy-prefix',
      maxConns: 100,
      user: '',
    });
    expect(conf).not.toMatch(/\{\{/);
    const settings = conf
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const line of [
      'mode tcp',
      'balance source',
      'hash-type consistent',
      'option tcpka',
      'option httpchk GET /readyz',
      'http-check expect status 200',
      'timeout client 75s',
      'timeout server 75s',
      'timeout tunnel 75s',
      'timeout connect 3s',
      'pidfile /tmp/herald-haproxy-prefix/haproxy.pid',
      'bind 127.0.0.1:9000 backlog 4096',
      'default-server check inter 500ms fall 3 rise 2 weight 100 maxconn 100',
    ]) {
      expect(settings).toContain(line);
    }
    const ids = haproxyServerIds(upstreams);
    expect(settings).toContain(`server 127.0.0.1:9001 127.0.0.1:9001 id ${ids.get('127.0.0.1:9001')}`);
    expect(settings).toContain(`server 127.0.0.1:9002 127.0.0.1:9002 id ${ids.get('127.0.0.1:9002')}`);
    // Draining nodes close their own sessions: HAProxy must not cut them when it marks a node down.
    expect(settings.some((l) => l.includes('on-marked-down'))).toBe(false);
    expect(settings.some((l) => l.includes('send-proxy'))).toBe(false);
    expect(settings.some((l) => /^daemon\b/.test(l))).toBe(false);
  });

  it('sends PROXY v2 on sessions and health checks when asked', () => {
    const conf = renderHaproxyConf({
      upstreams,
      listen: '127.0.0.1:9000',
      prefix: '/p',
      proxyProtocol: true,
    });
    expect(conf).toMatch(/^\s*default-server .* send-proxy-v2 check-send-proxy$/m);
  });

  it('gives each address a stable server id, whatever the other nodes', () => {
    const two = haproxyServerIds(upstreams);
    const three = haproxyServerIds([local(9003), ...upstreams]);
    expect(three.get('127.0.0.1:9001')).toBe(two.get('127.0.0.1:9001'));
    expect(three.get('127.0.0.1:9002')).toBe(two.get('127.0.0.1:9002'));
    expect(new Set(three.values()).size).toBe(3);
    for (const id of three.values()) expect(id).toBeGreaterThan(0);
  });
});

describe('startHaproxy', () => {
  let a: HttpBackend;
  let b: HttpBackend;
  let c: HttpBackend;
  let haproxy: HaproxyHandle | undefined;

  beforeAll(async () => {
    [a, b, c] = await Promise.all([httpBackend('a'), httpBackend('b'), httpBackend('c')]);
  });
  afterEach(async () => {
    await haproxy?.stop();
    haproxy = undefined;
    for (const be of [a, b, c]) be.ready = true;
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  it('balances on the source address and takes a node that answers 503 out of rotation', async () => {
    haproxy = await startHaproxy({
      upstreams: [local(a.port), local(b.port)],
      dir: tempDir('haproxy'),
      checkIntervalMs: 200,
    });
    expect(haproxy.kind).toBe('haproxy');
    expect(haproxy.url()).toBe(`ws://127.0.0.1:${haproxy.port}`);
    expect(fs.readFileSync(haproxy.confPath, 'utf8')).toContain('balance source');

    // A connection reaches a backend, and the same source keeps getting the same one.
    const first = await via(haproxy);
    expect(['a', 'b']).toContain(first);
    for (let i = 0; i < 3; i++) expect(await via(haproxy)).toBe(first);
    // Different sources spread over both.
    const spread = await mapping(haproxy, 40);
    expect(new Set(spread)).toEqual(new Set(['a', 'b']));
    expect(await mapping(haproxy, 40)).toEqual(spread);

    // Health checks run against /readyz.
    await waitFor(() => a.checks > 0 && b.checks > 0, { timeoutMs: 5000, what: 'health checks' });
    const states = await haproxy.servers();
    expect(states.map((s) => s.port).sort()).toEqual([a.port, b.port].sort());
    expect(states.every((s) => s.status === 'UP')).toBe(true);

    // A session already open to the chosen backend.
    const [chosen, other] = first === 'a' ? [a, b] : [b, a];
    const session: net.Socket = await connectFrom(haproxy.port);
    try {
      expect(await requestOn(session)).toBe(chosen.name);

      // It starts draining: /readyz says 503. HAProxy marks it down (3 failed checks) ...
      chosen.ready = false;
      const down = await serverStatus(haproxy, chosen.port, /^DOWN/, 10_000);
      expect(down.checkStatus).toBe('L7STS');
      // ... new connections from the same source go to the other node ...
      expect(await via(haproxy)).toBe(other.name);
      // ... and the open session is not cut (no on-marked-down shutdown-sessions).
      expect(await requestOn(session)).toBe(chosen.name);
    } finally {
      session.destroy();
    }

    // Ready again: back in rotation, and the source hashes to it again.
    chosen.ready = true;
    await serverStatus(haproxy, chosen.port, /^UP$/, 10_000);
    expect(await via(haproxy)).toBe(chosen.name);
  });

  it('reloads in place; adding or removing a node moves only its own share of sources', async () => {
    haproxy = await startHaproxy({
      upstreams: [local(a.port), local(b.port), local(c.port)],
      dir: tempDir('haproxy'),
    });
    const pid = haproxy.pid;
    const procs = await haproxy.procs();
    expect(procs.master).toBe(pid);
    expect(procs.workers).toHaveLength(1);

    const withC = await mapping(haproxy, 60);
    expect(new Set(withC)).toEqual(new Set(['a', 'b', 'c']));

    // A session open across the reload stays with the old worker (until hard-stop-after).
    const session = await connectFrom(haproxy.port);
    try {
      const before = await requestOn(session);
      await haproxy.reload([local(a.port), local(b.port)]);
      expect(haproxy.pid).toBe(pid);
      expect(haproxy.upstreams).toEqual([local(a.port), local(b.port)]);
      const after = await haproxy.procs();
      expect(after.workers).toHaveLength(1);
      expect(after.workers).not.toContain(procs.workers[0]);
      expect(after.oldWorkers).toEqual(procs.workers);
      expect(await requestOn(session)).toBe(before);
    } finally {
      session.destroy();
    }

    const withoutC = await mapping(haproxy, 60);
    withC.forEach((name, i) => {
      if (name === 'c') expect(['a', 'b']).toContain(withoutC[i]);
      else expect(withoutC[i]).toBe(name);
    });

    // Adding it back restores the original placement (stable server ids on the hash ring).
    await haproxy.reload([local(c.port), local(a.port), local(b.port)]);
    expect(await mapping(haproxy, 60)).toEqual(withC);

    // A broken config is refused and the running one is kept.
    await expect(haproxy.reload([])).rejects.toThrow(/at least one upstream/);
    expect(await via(haproxy, loopback(0))).toBe(withC[0]);

    const workers = (await haproxy.procs()).workers;
    await haproxy.stop();
    haproxy = undefined;
    expect(pidAlive(pid)).toBe(false);
    for (const w of workers) expect(pidAlive(w)).toBe(false);
  });

  it('kill9 takes the master and its worker down', async () => {
    haproxy = await startHaproxy({ upstreams: [local(a.port)], dir: tempDir('haproxy') });
    const { master, workers } = await haproxy.procs();
    await haproxy.kill9();
    expect(pidAlive(master)).toBe(false);
    for (const w of workers) expect(pidAlive(w)).toBe(false);
    expect(haproxy.process.signalCode).toBe('SIGKILL');
  });

  it('says how to install haproxy when it is missing', async () => {
    const saved = process.env.HAPROXY_BIN;
    process.env.HAPROXY_BIN = '/nonexistent/haproxy';
    try {
      await expect(startHaproxy({ upstreams: [local(a.port)] })).rejects.toThrow(
        /apt-get install -y haproxy/,
      );
    } finally {
      if (saved === undefined) delete process.env.HAPROXY_BIN;
      else process.env.HAPROXY_BIN = saved;
    }
  });
});

describe('startHaproxy with proxyProtocol', () => {
  let upstream: ProxyBackend;
  let haproxy: HaproxyHandle | undefined;

  beforeAll(async () => {
    upstream = await proxyBackend('p');
  });
  afterAll(async () => {
    await haproxy?.stop();
    await upstream?.close();
  });

  it('starts every session with a PROXY v2 header, and health checks with a LOCAL one', async () => {
    haproxy = await startHaproxy({
      upstreams: [local(upstream.port)],
      proxyProtocol: true,
      checkIntervalMs: 200,
      dir: tempDir('haproxy-pp'),
    });
    expect(haproxy.proxyProtocol).toBe(true);
    // The node sees LOCAL headers on the checks and answers them: it stays up.
    await waitFor(() => upstream.checks >= 2, { timeoutMs: 5000, what: 'two health checks' });
    expect((await haproxy.servers())[0]).toMatchObject({ status: 'UP', checkStatus: 'L7OK' });

    const client = await connectFrom(haproxy.port);
    try {
      client.write('hello');
      // The one for this client (HAProxy passes the launcher's readiness probe on too).
      const conn = await upstream.find(
        (c) => c.version === 2 && c.header.readUInt16BE(24) === client.localPort,
      );
      const h = conn.header;
      expect(conn.version).toBe(2);
      expect(h.subarray(0, 12).toString('latin1')).toBe('\r\n\r\n\0\r\nQUIT\n');
      expect(h[12]).toBe(0x21); // version 2, command PROXY
      expect(h[13]).toBe(0x11); // TCP over IPv4
      expect([...h.subarray(16, 20)].join('.')).toBe('127.0.0.1'); // source address
      expect([...h.subarray(20, 24)].join('.')).toBe('127.0.0.1'); // destination address
      expect(h.readUInt16BE(24)).toBe(client.localPort); // source port: the real client
      expect(h.readUInt16BE(26)).toBe(haproxy.port); // destination port: the balancer's
      // After the header, the client's bytes pass through untouched.
      const [echo] = await once(client, 'data', { signal: AbortSignal.timeout(5000) });
      expect(String(echo)).toBe('p:hello');
    } finally {
      client.destroy();
    }
    expect(upstream.rejected).toBe(0);
  });
});
