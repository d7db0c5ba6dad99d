import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WEBHOOK_EVENT_TYPES } from '@herald/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { loadApps, sha256Hex, wantedEvents } from '../src/index.js';
import { problemsOf } from './problems.js';

// Webhook endpoints (docs/webhooks.md): under each key of the apps file, or HERALD_WEBHOOKS for
// the single app from the environment; every problem names its field.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const SECRET = `whsec_${Buffer.from('0123456789abcdef01234567').toString('base64')}`;
const hook = (id: string, extra: object = {}) => ({
  id,
  url: `https://hooks.example/${id}`,
  events: ['notification.delivered', 'device.online'],
  secret: SECRET,
  ...extra,
});

function appsFile(keys: object[]): string {
  const d = mkdtempSync(join(tmpdir(), 'herald-wh-'));
  dirs.push(d);
  const f = join(d, 'apps.json');
  writeFileSync(f, JSON.stringify({ apps: [{ id: 'shop', keys, tokens: { secret: 's'.repeat(20) } }] }));
  return f;
}
const key = (id: string, webhooks: object[]) => ({
  id,
  sha256: sha256Hex(`${id}-0123456789abcdef`),
  scopes: ['publish'],
  webhooks,
});

describe('webhook endpoints in the apps file', () => {
  it('gives each endpoint its key; the app wants the union of their events', () => {
    const f = appsFile([
      key('k1', [hook('a')]),
      key('k2', [hook('b', { events: ['notification.expired'] })]),
    ]);
    const [shop] = loadApps({ HERALD_APPS_FILE: f }).apps;
    expect(shop?.webhooks).toEqual([
      { ...hook('a'), keyId: 'k1' },
      { ...hook('b', { events: ['notification.expired'] }), keyId: 'k2' },
    ]);
    // Keys themselves carry no endpoints (listings of keys never show secrets).
    expect(shop?.keys.map((k) => Object.keys(k))).toEqual([
      ['id', 'sha256', 'scopes'],
      ['id', 'sha256', 'scopes'],
    ]);
    expect(wantedEvents(shop?.webhooks)).toEqual(
      new Set(['notification.delivered', 'device.online', 'notification.expired']),
    );
  });

  it('names the field of unknown event types, non-http(s) URLs, bad secrets and duplicate ids', () => {
    const f = appsFile([
      key('k1', [
        hook('a', { url: 'ftp://hooks.example/a' }),
        hook('b', { events: ['notification.delivered', 'notification.read'] }),
        hook('c', { secret: 'not-a-secret' }),
      ]),
      key('k2', [hook('a', { events: ['device.online', 'device.online'] })]),
    ]);
    const problems = problemsOf(() => loadApps({ HERALD_APPS_FILE: f }));
    expect(problems).toEqual(
      expect.arrayContaining([
        `${f}: apps[0].keys[0].webhooks[0].url: must be an http(s) URL`,
        `${f}: apps[0].keys[0].webhooks[1].events[1]: must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}`,
        `${f}: apps[0].keys[0].webhooks[2].secret: must be a Standard Webhooks secret: whsec_ then base64 of 16-64 bytes`,
      ]),
    );
    const f2 = appsFile([
      key('k1', [hook('a')]),
      key('k2', [hook('a', { events: ['device.online', 'device.online'] })]),
    ]);
    expect(problemsOf(() => loadApps({ HERALD_APPS_FILE: f2 }))).toEqual([
      `${f2}: apps[0].keys[1].webhooks[0].id: "a" is also apps[0].keys[0].webhooks[0].id (endpoint ids are unique in an app)`,
      `${f2}: apps[0].keys[1].webhooks[0].events: lists an event twice`,
    ]);
  });
});

describe('HERALD_WEBHOOKS', () => {
  it('gives the app `default` endpoints for every key', () => {
    const [app] = loadApps({
      HERALD_API_KEYS: 'k'.repeat(20),
      HERALD_WEBHOOKS: JSON.stringify([hook('a')]),
    }).apps;
    expect(app?.webhooks).toEqual([hook('a')]);
    expect(app?.webhooks?.[0]?.keyId).toBeUndefined();
  });

  it('names the field of each problem', () => {
    const env = (v: unknown) => ({ HERALD_WEBHOOKS: typeof v === 'string' ? v : JSON.stringify(v) });
    expect(
      problemsOf(() =>
        loadApps(env([hook('a', { url: 'mailto:x@y' }), hook('b', { events: ['push.sent'] })])),
      ),
    ).toEqual([
      'HERALD_WEBHOOKS[0].url: must be an http(s) URL',
      `HERALD_WEBHOOKS[1].events[0]: must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}`,
    ]);
    expect(problemsOf(() => loadApps(env([hook('a', { events: [] })])))).toEqual([
      'HERALD_WEBHOOKS[0].events: must not have fewer than 1 items',
    ]);
    expect(problemsOf(() => loadApps(env('{nope')))[0]).toMatch(/^HERALD_WEBHOOKS: not valid JSON/);
    expect(problemsOf(() => loadApps(env({ id: 'a' })))[0]).toMatch(/^HERALD_WEBHOOKS: /);
  });
});
