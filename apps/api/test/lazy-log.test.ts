import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { lazyChildLoggerFactory } from '../src/lazy-log.js';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return { root: pino({ level }, stream) as unknown as FastifyBaseLogger, lines };
}

describe('request loggers made on first use (lazy-log.ts)', () => {
  it('writes the same line as a chain of pino children, bindings of every link included', () => {
    const { root, lines } = capture('info');
    const log = lazyChildLoggerFactory(root, { reqId: 'r1' }, {})
      .child({ ip: '127.0.0.1' })
      .child({ app: 'shop', key: 'env-1' });
    log.info({ extra: 1 }, 'request completed');
    log.debug('not at info');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      reqId: 'r1',
      ip: '127.0.0.1',
      app: 'shop',
      key: 'env-1',
      extra: 1,
      msg: 'request completed',
      level: 30,
    });
  });

  it('writes nothing below the level, and an error line with every binding above it', () => {
    const { root, lines } = capture('warn');
    const log = lazyChildLoggerFactory(root, { reqId: 'r2' }, {}).child({ ip: '::1' });
    log.info('incoming request');
    expect(lines).toHaveLength(0);
    log.error({ err: new Error('boom') }, 'request errored');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ reqId: 'r2', ip: '::1', msg: 'request errored', level: 50 });
    expect(log.level).toBe('warn');
  });

  it('honours a route log level by making the child at once', () => {
    const { root, lines } = capture('info');
    const log = lazyChildLoggerFactory(root, { reqId: 'r3' }, { level: 'error' });
    log.info('muted by the route');
    log.error('kept');
    expect(lines.map((l) => l.msg)).toEqual(['kept']);
  });
});
