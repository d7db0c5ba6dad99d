import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppRegistry, loadApps, SCOPES, sha256Hex, tenantLabel } from '../src/index.js';
import { problemsOf } from './problems.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'herald-apps-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const KEY_A = 'shop-key-0123456789';
const app = (id: string, key: string, extra: object = {}) => ({
  id,
  keys: [{ id: `${id}-k1`, sha256: sha256Hex(key), scopes: ['publish'] }],
  tokens: { secret: `${id}-secret-0123456789` },
  ...extra,
});

describe('loadApps without HERALD_APPS_FILE', () => {
  it('makes the single app `default` from the environment, every key with all scopes', () => {
    const { apps, source } = loadApps({
      HERALD_API_KEYS: `${KEY_A}, other-key-0123456789`,
      HERALD_TOKEN_SECRET: 's'.repeat(16),
      HERALD_ALLOWED_ORIGINS: 'https://a.example',
    });
    expect(source).toBe('env');
    expect(apps).toHaveLength(1);
    const [a] = apps;
    expect(a?.id).toBe('default');
    expect(a?.keys.map((k) => k.sha256)).toEqual([sha256Hex(KEY_A), sha256Hex('other-key-0123456789')]);
    // Listed and logged by position, never by anything derived from the key.
    expect(a?.keys.map((k) => k.id)).toEqual(['env-1', 'env-2']);
    expect(a?.keys[0]?.scopes).toEqual([...SCOPES]);
    expect(a?.tokens).toEqual({ secret: 's'.repeat(16) });
    expect(a?.allowedOrigins).toEqual(['https://a.example']);
    expect(a?.limits).toEqual({});
  });

  it('any origin by default; limits from the HERALD_RATE_* variables (0 = unlimited)', () => {
    const [a] = loadApps({ HERALD_RATE_PUBLISHES_PER_S: '50', HERALD_RATE_NOTIFICATIONS_PER_S: '0' }).apps;
    expect(a?.allowedOrigins).toBeUndefined();
    expect(a?.limits).toEqual({ publishesPerSecond: 50 });
  });
});

describe('apps file', () => {
  it('reads JSON and YAML alike', () => {
    const d = tmp();
    const json = join(d, 'apps.json');
    writeFileSync(
      json,
      JSON.stringify({ apps: [app('shop', KEY_A, { limits: { publishesPerSecond: 10 } })] }),
    );
    const yml = join(d, 'apps.yaml');
    writeFileSync(
      yml,
      [
        'apps:',
        '  - id: shop',
        '    keys:',
        `      - { id: shop-k1, sha256: ${sha256Hex(KEY_A)}, scopes: [publish] }`,
        '    tokens: { secret: shop-secret-0123456789 }',
        '    limits: { publishesPerSecond: 10 }',
      ].join('\n'),
    );
    const fromJson = loadApps({ HERALD_APPS_FILE: json });
    expect(fromJson.apps[0]?.limits).toEqual({ publishesPerSecond: 10 });
    expect(loadApps({ HERALD_APPS_FILE: yml }).apps).toEqual(fromJson.apps);
  });

  it('accepts the example of docs/tenancy.md', () => {
    const doc = readFileSync(new URL('../../../docs/tenancy.md', import.meta.url), 'utf8');
    const json = doc.split('```json\n')[1]?.split('\n```')[0] ?? '';
    const f = join(tmp(), 'apps.json');
    writeFileSync(f, json);
    const { apps } = loadApps({ HERALD_APPS_FILE: f });
    expect(apps.map((a) => a.id)).toEqual(['shop', 'blog']);
    expect(apps[0]?.keys[1]?.expiresAt).toBe(Date.parse('2027-06-30T00:00:00Z'));
  });

  it('names the field path of every problem', () => {
    const d = tmp();
    const f = join(d, 'apps.json');
    const bad = app('ok', 'k'.repeat(20));
    writeFileSync(
      f,
      JSON.stringify({
        apps: [
          bad,
          {
            id: 'Bad_Id',
            keys: [{ id: 'k', sha256: 'xyz', scopes: ['publish', 'root'], expiresAt: 'tomorrow' }],
            tokens: {},
            limits: { publishesPerSecond: 0, colour: 'red' },
          },
        ],
      }),
    );
    const problems = problemsOf(() => loadApps({ HERALD_APPS_FILE: f }));
    expect(problems).toEqual(
      expect.arrayContaining([
        `${f}: apps[1].id: must match ^[a-z0-9][a-z0-9-]{0,31}$`,
        `${f}: apps[1].keys[0].sha256: must match ^[0-9a-f]{64}$`,
        `${f}: apps[1].keys[0].scopes[1]: must be one of publish, status:read, presence:read, admin`,
        `${f}: apps[1].keys[0].expiresAt: must be an ISO 8601 date-time (2026-12-31T00:00:00Z)`,
        `${f}: apps[1].limits: unknown field colour`,
        `${f}: apps[1].limits.publishesPerSecond: must be >= 1`,
      ]),
    );
  });

  it("reads an app's own VAPID pair, and names a bad one's fields", () => {
    const d = tmp();
    const f = join(d, 'apps.json');
    const vapid = {
      publicKey: 'B'.repeat(87),
      privateKey: 'p'.repeat(43),
      subject: 'mailto:ops@shop.example',
    };
    writeFileSync(f, JSON.stringify({ apps: [app('shop', KEY_A, { vapid }), app('blog', 'b'.repeat(20))] }));
    const apps = loadApps({ HERALD_APPS_FILE: f }).apps;
    expect(apps.map((a) => a.vapid)).toEqual([vapid, undefined]);
    writeFileSync(
      f,
      JSON.stringify({ apps: [app('shop', KEY_A, { vapid: { ...vapid, subject: 'ops@shop.example' } })] }),
    );
    expect(problemsOf(() => loadApps({ HERALD_APPS_FILE: f }))).toEqual([
      `${f}: apps[0].vapid.subject: must match ^(mailto:|https://)\\S+$`,
    ]);
  });

  it('refuses duplicate ids and keys, and apps that cannot verify device tokens', () => {
    const d = tmp();
    const f = join(d, 'apps.json');
    writeFileSync(f, JSON.stringify({ apps: [app('a', KEY_A), app('a', KEY_A, { tokens: {} })] }));
    expect(problemsOf(() => loadApps({ HERALD_APPS_FILE: f }))).toEqual([
      `${f}: apps[1].id: "a" is also apps[0].id`,
      `${f}: apps[1].tokens: needs secret, jwksUrl or jwksFile (how nodes verify its device tokens)`,
      `${f}: apps[1].keys[0].sha256: the same key is also apps[0].keys[0]`,
    ]);
    writeFileSync(f, '{ "apps": [');
    expect(problemsOf(() => loadApps({ HERALD_APPS_FILE: f }))[0]).toMatch(/not valid \.json/);
    expect(problemsOf(() => loadApps({ HERALD_APPS_FILE: join(d, 'none.json') }))[0]).toMatch(/cannot read/);
  });
});

describe('AppRegistry', () => {
  const until = async (cond: () => boolean, what: string) => {
    const end = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('reloads on SIGHUP and on a file change; a bad file keeps the current apps and is logged', async () => {
    const d = tmp();
    const f = join(d, 'apps.json');
    writeFileSync(f, JSON.stringify({ apps: [app('a', KEY_A)] }));
    const errors: object[] = [];
    const reg = new AppRegistry(
      { HERALD_APPS_FILE: f },
      { debounceMs: 20, log: { info: () => {}, error: (o) => errors.push(o) } },
    ).watch();
    const seen: string[][] = [];
    reg.onChange((apps) => seen.push(apps.map((a) => a.id)));
    try {
      expect(reg.keyByHash(sha256Hex(KEY_A))?.app.id).toBe('a');

      // Replaced as editors do (write aside, rename over): the watch still sees it.
      writeFileSync(`${f}.tmp`, JSON.stringify({ apps: [app('a', 'new-key-0123456789'), app('b', KEY_A)] }));
      renameSync(`${f}.tmp`, f);
      await until(() => reg.get('b') !== undefined, 'the watch to load app b');
      expect(reg.keyByHash(sha256Hex(KEY_A))?.app.id).toBe('b');
      expect(seen).toEqual([['a', 'b']]);

      writeFileSync(f, JSON.stringify({ apps: [{ id: 'NOPE' }] }));
      await until(() => errors.length > 0, 'the bad file to be logged');
      expect(reg.all().map((a) => a.id)).toEqual(['a', 'b']);
      expect(JSON.stringify(errors[0])).toContain('apps[0].id: must match');
    } finally {
      reg.close();
    }
  });

  it('reloads on SIGHUP (file watch off); a bad file at start is an error', async () => {
    const d = tmp();
    const f = join(d, 'apps.json');
    writeFileSync(f, JSON.stringify({ apps: [app('a', KEY_A)] }));
    const reg = new AppRegistry({ HERALD_APPS_FILE: f }, { watchFile: false }).watch();
    try {
      writeFileSync(f, JSON.stringify({ apps: [app('c', KEY_A)] }));
      process.kill(process.pid, 'SIGHUP');
      await until(() => reg.get('c') !== undefined, 'SIGHUP to reload');
    } finally {
      reg.close();
    }
    writeFileSync(f, '[]');
    expect(problemsOf(() => new AppRegistry({ HERALD_APPS_FILE: f }))).toEqual([
      `${f}: (root): must be object`,
    ]);
  });
});

describe('tenantLabel', () => {
  it('keeps the first app ids as they are, then `other`; `all` when switched off', () => {
    const label = tenantLabel(true, 2);
    expect(['a', 'b', 'c', 'a', 'd'].map(label)).toEqual(['a', 'b', 'other', 'a', 'other']);
    expect(tenantLabel(false)('a')).toBe('all');
  });
});
