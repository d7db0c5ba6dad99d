import { createHash, randomBytes } from 'node:crypto';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * API keys created at runtime (admin API, `herald keys create`), beside the apps file's keys.
 * Redis holds only the key's sha256: a hash per key (`keys.apiKey(sha256)`: app, id, scopes,
 * createdAt, expiresAt, name) and a hash per app from key id to sha256 (`keys.apiKeyIndex(app)`)
 * for listing and revoking by id. Both carry the `{apikeys}` tag, so create and revoke are one
 * MULTI on one slot. The key itself is returned once by `create` and never stored.
 */
export interface StoredApiKey {
  app: string;
  id: string;
  scopes: string[];
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms; undefined = no expiry. */
  expiresAt?: number;
  name?: string;
}

/** Most runtime keys per app: a bound on the index and on a listing. */
export const MAX_KEYS_PER_APP = 1000;
/** An expired key's record stays this long so it is answered `API key expired`, not unknown. */
const KEEP_EXPIRED_MS = 7 * 86_400_000;

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

export class TooManyKeys extends Error {
  constructor(app: string) {
    super(`app ${app} already has ${MAX_KEYS_PER_APP} runtime keys: revoke some first`);
  }
}

interface Cached {
  at: number;
  value: StoredApiKey | undefined;
}

export class ApiKeyStore {
  private readonly cache = new Map<string, Cached>();
  private readonly cacheMs: number;
  private readonly cacheSize: number;

  /**
   * `cacheMs`: how long a lookup (found or not) is reused in this process, so a busy key costs
   * Redis one HGETALL per process per period; it is also how long a revoked key may still work
   * on other processes (docs/tenancy.md). `cacheSize` bounds the entries (oldest dropped first).
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    opts: { cacheMs?: number; cacheSize?: number } = {},
  ) {
    this.cacheMs = opts.cacheMs ?? 5000;
    this.cacheSize = opts.cacheSize ?? 10_000;
  }

  /** Makes a key for `app`; returns it (show it once) and its record. */
  async create(
    app: string,
    opts: { scopes: string[]; expiresAt?: number; name?: string },
  ): Promise<{ key: string; record: StoredApiKey }> {
    const index = this.keys.apiKeyIndex(app);
    if ((await this.redis.hlen(index)) >= MAX_KEYS_PER_APP) throw new TooManyKeys(app);
    const key = `hrld_${randomBytes(32).toString('base64url')}`;
    const hash = sha256Hex(key);
    const record: StoredApiKey = {
      app,
      id: `k_${randomBytes(6).toString('hex')}`,
      scopes: [...new Set(opts.scopes)],
      createdAt: Date.now(),
    };
    if (opts.expiresAt !== undefined) record.expiresAt = opts.expiresAt;
    if (opts.name) record.name = opts.name;
    const fields: Record<string, string> = {
      app,
      id: record.id,
      scopes: record.scopes.join(' '),
      createdAt: String(record.createdAt),
      expiresAt: record.expiresAt === undefined ? '' : String(record.expiresAt),
      name: record.name ?? '',
    };
    const tx = this.redis.multi().hset(this.keys.apiKey(hash), fields).hset(index, record.id, hash);
    if (record.expiresAt !== undefined)
      tx.pexpireat(this.keys.apiKey(hash), record.expiresAt + KEEP_EXPIRED_MS);
    await exec(tx);
    this.cache.delete(hash);
    return { key, record };
  }

  /** The record of a presented key's sha256, cached for `cacheMs`; undefined when unknown. */
  async lookup(hash: string): Promise<StoredApiKey | undefined> {
    const hit = this.cache.get(hash);
    const now = Date.now();
    if (hit && now - hit.at < this.cacheMs) return hit.value;
    const value = parse(await this.redis.hgetall(this.keys.apiKey(hash)));
    this.cache.delete(hash);
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(hash, { at: now, value });
    return value;
  }

  /** The app's runtime keys, oldest first (never the key or its hash). */
  async list(app: string): Promise<StoredApiKey[]> {
    const index = this.keys.apiKeyIndex(app);
    const ids = await this.redis.hgetall(index);
    const entries = Object.entries(ids).slice(0, MAX_KEYS_PER_APP);
    if (entries.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const [, hash] of entries) pipe.hgetall(this.keys.apiKey(hash));
    const replies = (await pipe.exec()) ?? [];
    const out: StoredApiKey[] = [];
    const gone: string[] = [];
    entries.forEach(([id], i) => {
      const [err, fields] = replies[i] ?? [];
      if (err) throw err;
      const rec = parse(fields as Record<string, string>);
      if (rec) out.push(rec);
      else gone.push(id); // its record expired (a week after expiresAt)
    });
    if (gone.length > 0) await this.redis.hdel(index, ...gone);
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Deletes a runtime key of `app` by id; false when it has no such key. */
  async revoke(app: string, id: string): Promise<boolean> {
    const index = this.keys.apiKeyIndex(app);
    const hash = await this.redis.hget(index, id);
    if (!hash) return false;
    await exec(this.redis.multi().del(this.keys.apiKey(hash)).hdel(index, id));
    this.cache.delete(hash);
    return true;
  }
}

async function exec(tx: ReturnType<RedisClient['multi']>): Promise<void> {
  const replies = await tx.exec();
  for (const [err] of replies ?? []) if (err) throw err;
}

function parse(f: Record<string, string> | undefined): StoredApiKey | undefined {
  if (!f?.app || !f.id) return undefined;
  const rec: StoredApiKey = {
    app: f.app,
    id: f.id,
    scopes: (f.scopes ?? '').split(' ').filter(Boolean),
    createdAt: Number(f.createdAt),
  };
  if (f.expiresAt) rec.expiresAt = Number(f.expiresAt);
  if (f.name) rec.name = f.name;
  return rec;
}
