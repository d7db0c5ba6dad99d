/**
 * Where the service worker module (sw.ts) records the notification ids it showed, and the page
 * helper (webpush.ts) reads them: the Cache Storage, which both a page and its service worker
 * can open (IndexedDB would do too, at three times the code). Bounded to the last MAX_PUSHED.
 */
export const PUSHED_CACHE = 'herald-webpush';
export const PUSHED_URL = '/__herald/pushed-ids';
export const MAX_PUSHED = 500;

/** The parts of the Cache Storage API used here (no DOM lib in this package). */
export interface CacheStorageLike {
  open(name: string): Promise<{
    match(url: string): Promise<{ json(): Promise<unknown> } | undefined>;
    put(url: string, res: unknown): Promise<void>;
  }>;
}

export function cacheStorage(): CacheStorageLike | undefined {
  return (globalThis as { caches?: CacheStorageLike }).caches;
}

/** Ids recorded so far, oldest first ([] when there is no Cache Storage or nothing recorded). */
export async function readPushed(): Promise<string[]> {
  const caches = cacheStorage();
  if (!caches) return [];
  const res = await (await caches.open(PUSHED_CACHE)).match(PUSHED_URL);
  const v = res ? await res.json() : [];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
