import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { intFlag, list, parse, secondsFlag } from '../src/args.js';
import { deliverAt } from '../src/commands/publish.js';
import { UsageError } from '../src/errors.js';
import { describe as describeFetchError } from '../src/http.js';
import { renderBar } from '../src/progress.js';
import { findSecrets, resolveCommon } from '../src/settings.js';
import { percentile, summarize } from '../src/stats.js';
import { checkTokenOptions, mintToken } from '../src/token.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'herald-cli-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('stats', () => {
  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(summarize([3, 1, 2])).toEqual({ count: 3, p50: 2, p90: 3, p99: 3, max: 3 });
  });
});

describe('progress bar', () => {
  it('fills in proportion and clamps', () => {
    expect(renderBar(0, 10)).toBe('[----------]');
    expect(renderBar(0.5, 10)).toBe('[#####-----]');
    expect(renderBar(2, 4)).toBe('[####]');
    expect(renderBar(Number.NaN, 4)).toBe('[----]');
  });
});

describe('arguments', () => {
  it('splits repeated and comma-separated values', () => {
    expect(list(['a,b', ' c ', ''])).toEqual(['a', 'b', 'c']);
    expect(list(undefined)).toEqual([]);
  });

  it('checks numbers and turns parse errors into usage errors', () => {
    expect(intFlag('n', undefined, 5, 1, 10)).toBe(5);
    expect(intFlag('n', '7', 5, 1, 10)).toBe(7);
    for (const bad of ['0', '11', '1.5', 'x', '', '-1'])
      expect(() => intFlag('n', bad, 5, 1, 10)).toThrow(UsageError);
    expect(secondsFlag('t', '0.5', 1)).toBe(0.5);
    expect(() => secondsFlag('t', '0', 1)).toThrow(/positive number of seconds/);
    expect(() => parse(['--nope'], { a: { type: 'string' } })).toThrow(UsageError);
    expect(() => parse(['extra'], { a: { type: 'string' } })).toThrow(/unexpected argument "extra"/);
    expect(parse(['id-1'], { a: { type: 'string' } }, 1).positionals).toEqual(['id-1']);
  });

  it('normalizes --at to an ISO time with a zone', () => {
    expect(deliverAt('2030-01-02T09:00:00Z')).toBe('2030-01-02T09:00:00.000Z');
    expect(deliverAt('2030-01-02T10:00:00+01:00')).toBe('2030-01-02T09:00:00.000Z');
    expect(deliverAt(undefined)).toBeUndefined();
    expect(() => deliverAt('next tuesday')).toThrow(UsageError);
  });
});

describe('settings', () => {
  it('finds .herald/secrets.json in the working directory or a parent', () => {
    const root = path.join(tmp, 'repo');
    mkdirSync(path.join(root, '.herald'), { recursive: true });
    mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    writeFileSync(
      path.join(root, '.herald', 'secrets.json'),
      '{"apiKey":"k-0123456789abcdef","tokenSecret":"s"}',
    );
    expect(findSecrets(path.join(root, 'a', 'b'))).toEqual({
      file: path.join(root, '.herald', 'secrets.json'),
      apiKey: 'k-0123456789abcdef',
      tokenSecret: 's',
    });
    expect(findSecrets(tmp)).toBeUndefined();
  });

  it('prefers flags, then the environment, then the local defaults', () => {
    const env = { HERALD_API_URL: 'http://api.example:1/', HERALD_API_KEY: 'env-key' };
    expect(resolveCommon({}, env)).toMatchObject({
      api: 'http://api.example:1',
      ws: 'ws://127.0.0.1:8000/v1/ws',
      key: 'env-key',
    });
    expect(resolveCommon({ api: 'https://x', key: 'flag-key', ws: 'wss://y/v1/ws' }, env)).toMatchObject({
      api: 'https://x',
      ws: 'wss://y/v1/ws',
      key: 'flag-key',
    });
    expect(() => resolveCommon({ ws: 'nope' }, {})).toThrow(/--ws "nope" is not a URL/);
  });
});

describe('tokens', () => {
  it('mints with sub, uid, topics and exp', async () => {
    const t = decodeJwt(
      await mintToken({ secret: 's'.repeat(16), device: 'd', user: 'u', topics: ['a.*'], expires: '2h' }),
    );
    expect(t).toMatchObject({ sub: 'd', uid: 'u', topics: ['a.*'] });
    expect((t.exp as number) - (t.iat as number)).toBe(7200);
  });

  it('accepts topic patterns and refuses what the nodes would', () => {
    for (const ok of ['news', 'news.*', 'news.>', 'a.*.c', '>', 'news.**'])
      expect(
        () => checkTokenOptions({ device: 'd', user: 'u', topics: [ok], expires: '1h' }),
        ok,
      ).not.toThrow();
    for (const bad of ['news.', '>.news', 'a b', 'news.>.x'])
      expect(() => checkTokenOptions({ device: 'd', user: 'u', topics: [bad], expires: '1h' }), bad).toThrow(
        UsageError,
      );
    expect(() => checkTokenOptions({ device: 'd', user: 'u', expires: '1 fortnight' })).toThrow(/--expires/);
  });
});

describe('fetch errors', () => {
  it('names the cause', () => {
    const err = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
    });
    expect(describeFetchError(err)).toBe('connect ECONNREFUSED 127.0.0.1:9');
    expect(describeFetchError(Object.assign(new Error('x'), { name: 'TimeoutError' }))).toBe('timed out');
  });
});
