import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { type RedisHandle, redisPing, startRedis } from '../src/index.js';
import { pidAlive } from './helpers.js';

type Reply = string | null | Reply[];

/** Parses one RESP reply at `pos`; undefined when the buffer does not hold all of it yet. */
function parse(buf: string, pos: number): [Reply, number] | undefined {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const head = buf.slice(pos + 1, eol);
  const next = eol + 2;
  switch (buf[pos]) {
    case '+':
    case ':':
      return [head, next];
    case '-':
      return [`ERR ${head}`, next];
    case '$': {
      const len = Number(head);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.slice(next, next + len), next + len + 2];
    }
    case '*': {
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < Number(head); i++) {
        const item = parse(buf, at);
        if (!item) return undefined;
        items.push(item[0]);
        at = item[1];
      }
      return [items, at];
    }
    default:
      throw new Error(`bad reply ${JSON.stringify(buf)}`);
  }
}

/** Sends one command over a raw socket (RESP, ASCII values) and resolves with the reply. */
function command(port: number, ...args: string[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('redis did not answer'));
    }, 3000);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.once('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`);
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const reply = parse(buffer, 0);
      if (!reply) return;
      clearTimeout(timer);
      socket.end();
      resolve(reply[0]);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('startRedis', () => {
  let redis: RedisHandle | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  it('answers PING and keeps data across restart() through the AOF', async () => {
    redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    await expect(redisPing(redis.host, redis.port)).resolves.toBe(true);
    await expect(command(redis.port, 'CONFIG', 'GET', 'appendonly')).resolves.toEqual(['appendonly', 'yes']);

    expect(await command(redis.port, 'SET', 'herald:test', 'kept')).toBe('OK');
    const firstPid = redis.pid;
    await redis.restart();
    expect(redis.pid).not.toBe(firstPid);
    expect(pidAlive(firstPid)).toBe(false);
    expect(await command(redis.port, 'GET', 'herald:test')).toBe('kept');
  });

  it('kill9() takes it down hard', async () => {
    const r = await startRedis({ appendonly: false });
    const pid = r.pid;
    await r.kill9();
    expect(pidAlive(pid)).toBe(false);
    await expect(redisPing(r.host, r.port, 500)).resolves.toBe(false);
  });
});
