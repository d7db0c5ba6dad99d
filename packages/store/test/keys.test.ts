import { describe, expect, it } from 'vitest';
import { DEFAULT_APP, Keys } from '../src/index.js';

/** Every key and channel a Keys builds for the same names (devices, users, topics, ids). */
function allKeys(k: Keys): { perApp: string[]; global: string[] } {
  const perApp = [
    ...Object.values(k.inbox('d1')),
    k.presence('d1'),
    k.presenceAddr('d1'),
    k.cursors('d1'),
    k.deviceTopics('d1'),
    k.userDevices('u1'),
    ...Object.values(k.topic('news')),
    k.topicMembers('news'),
    k.noPresence(k.topic('news')),
    ...Object.values(k.broadcast()),
    k.allDevices(),
    k.status('n1'),
    k.idempotency('key1', 'i1'),
    k.appConnections(),
    k.nodeChannel('node-1'),
    k.topicChannel('news'),
    k.broadcastChannel(),
  ];
  const global = [k.nodes(), k.nodeConnections(), k.queuePrefix(), k.replicaBarrier()];
  return { perApp, global };
}

/** The hash tag Redis Cluster hashes: the first {...} with something inside. */
function tag(key: string): string {
  const m = /\{([^}]+)\}/.exec(key);
  return m ? (m[1] as string) : key;
}

describe('Keys.forApp', () => {
  const root = new Keys('herald');

  it('keeps the default app on the keys of a single-app deployment', () => {
    expect(root.forApp(DEFAULT_APP)).toBe(root);
    expect(root.forApp('shop').forApp(DEFAULT_APP)).toBe(root);
    expect(allKeys(root.forApp(DEFAULT_APP))).toEqual(allKeys(new Keys('herald')));
    expect(root.inbox('d1').stream).toBe('herald:{d:d1}:inbox');
  });

  it("puts another app's keys under its prefix, with the same hash tags, one object per app", () => {
    const shop = root.forApp('shop');
    expect(shop).toBe(root.forApp('shop'));
    expect(shop.appId).toBe('shop');
    expect(shop.inbox('d1').stream).toBe('herald:a:shop:{d:d1}:inbox');
    expect(shop.nodeChannel('node-1')).toBe('herald:a:shop:bell:node:node-1');
    const tagged = (k: Keys) =>
      allKeys(k)
        .perApp.filter((key) => key.includes('{'))
        .map(tag);
    expect(tagged(shop)).toEqual(tagged(root));
    expect(tagged(root)).toHaveLength(17);
  });

  it("never lets two apps' keys or channels collide; deployment keys stay global", () => {
    const apps = [root, root.forApp('a'), root.forApp('b'), root.forApp('a-1'), root.forApp('default-2')];
    const seen = new Map<string, string>();
    for (const k of apps)
      for (const key of allKeys(k).perApp) {
        expect(seen.get(key), `${key} of ${k.appId}`).toBeUndefined();
        seen.set(key, k.appId);
      }
    for (const k of apps) expect(allKeys(k).global).toEqual(allKeys(root).global);
    // No app key is a prefix-extension of another app's keyspace (a SCAN on one app's prefix).
    for (const key of allKeys(root.forApp('a')).perApp) expect(key.startsWith('herald:a:a-1:')).toBe(false);
  });

  it('refuses an app id that could break out of its prefix', () => {
    for (const bad of ['', 'Shop', 'a:b', 'a{b}', '-a', 'x'.repeat(33)])
      expect(() => root.forApp(bad), bad).toThrow(/invalid app id/);
  });
});
