import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../support/fault-proxy.js';

/** An echo server on 127.0.0.1 that counts its connections. */
async function echoServer(): Promise<{ server: net.Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

/** A client socket that collects what it receives. */
async function client(port: number): Promise<{ s: net.Socket; got: () => string; ended: Promise<string> }> {
  const s = net.connect({ host: '127.0.0.1', port });
  let data = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    data += d;
  });
  const ended = new Promise<string>((resolve) => {
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('close', () => resolve('close'));
  });
  await new Promise<void>((r, j) => {
    s.once('connect', () => r());
    s.once('error', j);
  });
  return { s, got: () => data, ended };
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let echo: Awaited<ReturnType<typeof echoServer>>;
let proxy: FaultProxy;
beforeEach(async () => {
  echo = await echoServer();
  proxy = await FaultProxy.start({
    target: { host: '127.0.0.1', port: echo.port },
    maxBufferedBytes: 64 * 1024,
  });
});
afterEach(async () => {
  await proxy.close();
  await new Promise((r) => echo.server.close(r));
});

describe('FaultProxy', () => {
  it('forwards both ways, and delays each chunk by the latency set', async () => {
    const c = await client(proxy.port);
    c.s.write('hello');
    await until(() => c.got() === 'hello', 'echo');
    proxy.latency(150);
    const t0 = performance.now();
    c.s.write('+late');
    await until(() => c.got() === 'hello+late', 'delayed echo');
    // Two hops through the proxy (there and back): at least twice the latency.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    proxy.heal();
    c.s.destroy();
  });

  it('latency one way only: requests go through at once, answers late', async () => {
    const c = await client(proxy.port);
    proxy.latency(200, 'down');
    const t0 = performance.now();
    c.s.write('q');
    await until(() => c.got() === 'q', 'echo');
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(390);
    proxy.heal();
    c.s.destroy();
  });

  it('stall: connections stay open, nothing is forwarded, no upstream is opened; heal delivers it all', async () => {
    const before = await client(proxy.port);
    before.s.write('a');
    await until(() => before.got() === 'a', 'echo before the stall');
    proxy.stall();
    before.s.write('b');
    const during = await client(proxy.port); // accepted by the proxy: the half-open side
    during.s.write('c');
    // What a partition looks like from both ends, for a while: open sockets, no bytes, no upstream.
    await new Promise((r) => setTimeout(r, 300));
    expect(before.got()).toBe('a');
    expect(during.got()).toBe('');
    expect(echo.accepted()).toBe(1);
    expect(before.s.destroyed || during.s.destroyed).toBe(false);
    proxy.heal();
    await until(() => before.got() === 'ab' && during.got() === 'c', 'held bytes after heal');
    expect(echo.accepted()).toBe(2);
    before.s.destroy();
    during.s.destroy();
  });

  it('blackhole(ms) heals by itself', async () => {
    const c = await client(proxy.port);
    proxy.blackhole(250);
    const t0 = performance.now();
    c.s.write('x');
    await until(() => c.got() === 'x', 'echo after the blackhole');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240);
    expect(proxy.mode).toBe('pass');
    c.s.destroy();
  });

  it('reset cuts every open connection with a RST, and accepts new ones', async () => {
    const a = await client(proxy.port);
    const b = await client(proxy.port);
    a.s.write('1');
    b.s.write('2');
    await until(() => a.got() === '1' && b.got() === '2', 'echoes');
    expect(proxy.reset()).toBe(2);
    expect(await a.ended).toBe('ECONNRESET');
    expect(await b.ended).toBe('ECONNRESET');
    const c = await client(proxy.port);
    c.s.write('3');
    await until(() => c.got() === '3', 'echo on a new connection');
    c.s.destroy();
  });

  it('holds a bounded amount while stalled: the sender is pushed back through TCP', async () => {
    const c = await client(proxy.port);
    c.s.write('0');
    await until(() => c.got() === '0', 'first echo');
    proxy.stall();
    const chunk = Buffer.alloc(64 * 1024, 'z');
    // 32 MiB offered; the proxy stops reading, so most of it stays in the sender's buffer.
    for (let i = 0; i < 512; i++) c.s.write(chunk);
    await new Promise((r) => setTimeout(r, 200));
    expect(proxy.bufferedBytes).toBeLessThanOrEqual(64 * 1024 + 64 * 1024);
    expect(c.s.writableLength).toBeGreaterThan(16 * 1024 * 1024);
    proxy.heal();
    await until(() => c.got().length === 1 + 512 * 64 * 1024, 'all 32 MiB echoed after heal', 20_000);
    c.s.destroy();
  });

  it('refuses a bad target or latency with a clear error', async () => {
    await expect(FaultProxy.start({ target: { host: '127.0.0.1', port: 0 } })).rejects.toThrow(
      /bad target port/,
    );
    expect(() => proxy.latency(-1)).toThrow(/bad latency/);
  });
});
