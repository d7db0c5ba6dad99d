import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NginxHandle, renderNginxConf, startNginx } from '../src/index.js';
import { connectFrom, type ProxyBackend, proxyBackend } from './backends.js';
import { pidAlive, tcpRequest, tempDir } from './helpers.js';

interface Echo {
  name: string;
  port: number;
  server: net.Server;
  close(): Promise<void>;
}

/** A TCP server that answers every chunk with `<name>:<chunk>`. */
function echoServer(name: string): Promise<Echo> {
  return new Promise((resolve) => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('data', (data) => socket.write(`${name}:${data}`));
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      resolve({
        name,
        port: address.port,
        server,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

describe('renderNginxConf', () => {
  it('fills every placeholder', () => {
    const conf = renderNginxConf({
      upstreams: [
        { host: '127.0.0.1', port: 9001 },
        { host: '127.0.0.1', port: 9002 },
      ],
      listen: '127.0.0.1:9000',
      prefix: '/tmp/herald-prefix',
      maxConns: 100,
      modules: '',
      user: '',
    });
    expect(conf).not.toMatch(/\{\{/);
    expect(conf).not.toMatch(/^\s*http\s*\{/m);
    expect(conf).toContain('hash $remote_addr consistent;');
    expect(conf).toContain('server 127.0.0.1:9001 max_fails=3 fail_timeout=10s max_conns=100;');
    expect(conf).toContain('server 127.0.0.1:9002 max_fails=3 fail_timeout=10s max_conns=100;');
    expect(conf).toContain('proxy_timeout 75s;');
    expect(conf).toContain('pid /tmp/herald-prefix/nginx.pid;');
    expect(conf).toContain('listen 127.0.0.1:9000');
  });
});

describe('startNginx', () => {
  let a: Echo;
  let b: Echo;
  let nginx: NginxHandle | undefined;

  beforeAll(async () => {
    [a, b] = await Promise.all([echoServer('a'), echoServer('b')]);
  });
  afterAll(async () => {
    await nginx?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  it('proxies connections to the upstreams, fails over, reloads, stops', async () => {
    nginx = await startNginx({
      upstreams: [a, b].map((e) => ({ host: '127.0.0.1', port: e.port })),
      dir: tempDir('nginx'),
    });
    expect(nginx.url()).toBe(`ws://127.0.0.1:${nginx.port}`);
    expect(fs.readFileSync(nginx.confPath, 'utf8')).toContain(`max_conns=`);

    const first = await tcpRequest(nginx.port, 'hello');
    expect(first).toMatch(/^[ab]:hello$/);
    // hash $remote_addr: the same client lands on the same upstream
    expect(await tcpRequest(nginx.port, 'again')).toBe(`${first[0]}:again`);

    // the chosen upstream goes away: proxy_next_upstream moves new sessions to the other one
    const [gone, other] = first.startsWith('a:') ? [a, b] : [b, a];
    await gone.close();
    expect(await tcpRequest(nginx.port, 'failover')).toBe(`${other.name}:failover`);

    // reload onto a new upstream set
    const c = await echoServer('c');
    try {
      await nginx.reload([{ host: '127.0.0.1', port: c.port }]);
      expect(nginx.upstreams).toEqual([{ host: '127.0.0.1', port: c.port }]);
      expect(await tcpRequest(nginx.port, 'reloaded')).toBe('c:reloaded');
    } finally {
      await c.close();
    }

    const pid = nginx.pid;
    await nginx.stop();
    expect(pidAlive(pid)).toBe(false);
    nginx = undefined;
  });
});

describe('startNginx with proxyProtocol', () => {
  let upstream: ProxyBackend;
  let nginx: NginxHandle | undefined;

  beforeAll(async () => {
    upstream = await proxyBackend('p');
  });
  afterAll(async () => {
    await nginx?.stop();
    await upstream?.close();
  });

  it('starts every session with a PROXY v1 line carrying the client address', async () => {
    nginx = await startNginx({
      upstreams: [{ host: '127.0.0.1', port: upstream.port }],
      proxyProtocol: true,
      dir: tempDir('nginx-pp'),
    });
    expect(nginx.kind).toBe('nginx');
    expect(nginx.proxyProtocol).toBe(true);
    expect(fs.readFileSync(nginx.confPath, 'utf8')).toMatch(/^\s*proxy_protocol on;$/m);

    const client = await connectFrom(nginx.port);
    try {
      client.write('hello');
      const line = `PROXY TCP4 127.0.0.1 127.0.0.1 ${client.localPort} ${nginx.port}\r\n`;
      // The one for this client (nginx passes its readiness probe on too).
      const conn = await upstream.find((c) => c.header.toString('latin1') === line, 5000);
      expect(conn.version).toBe(1);
      expect(conn.header.toString('latin1')).toBe(line);
      // Every session starts with a v1 line.
      expect(upstream.proxied.every((c) => c.header.toString('latin1').startsWith('PROXY TCP4 '))).toBe(true);
      // After the header, the client's bytes pass through untouched.
      const [echo] = await once(client, 'data', { signal: AbortSignal.timeout(5000) });
      expect(String(echo)).toBe('p:hello');
    } finally {
      client.destroy();
    }
    expect(upstream.rejected).toBe(0);
  });
});
