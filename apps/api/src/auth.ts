import { createHash } from 'node:crypto';
import type { AppConfig, AppRegistry, Scope } from '@herald/config';
import type { ApiKeyStore, Keys } from '@herald/store';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ForbiddenScope, Unauthorized } from './errors.js';

/** Who is calling: the app and key a request's API key resolved to (docs/tenancy.md). */
export interface Tenant {
  app: AppConfig;
  /** The app's Redis keys (`Keys.forApp(app.id)`; the deployment's own keys for `default`). */
  keys: Keys;
  /** The key's id: the apps file's, `env-N` for the N-th of HERALD_API_KEYS, `k_...` for runtime keys. */
  keyId: string;
  scopes: ReadonlySet<Scope>;
  /**
   * Where the key is defined: the apps file / HERALD_API_KEYS, or created at runtime in Redis;
   * `device`: no API key but a device token, on the device routes (device-auth.ts, no scopes).
   */
  source: 'config' | 'redis' | 'device';
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * First 16 hex of sha256(api key): scopes Idempotency-Keys per publisher without the key
     * itself ever reaching Redis or the logs.
     */
    apiKeyId: string;
    /** Set by the /v1 auth hook before anything else runs. */
    tenant: Tenant;
  }
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Most keys whose hash is kept (cleared when full): a publisher uses one or a few. */
const HASH_CACHE_MAX = 1024;

/**
 * sha256 of the keys seen lately: hashing per request was 2-3% of the API's CPU in the
 * single-device benchmark (BENCHMARKS.md, issue #14). The keys are in the process's memory
 * while their requests run anyway; an unknown key's hash is not kept (no growth by guessing).
 */
class KeyHashes {
  private readonly known = new Map<string, string>();

  of(key: string): string {
    return this.known.get(key) ?? sha256(key);
  }

  remember(key: string, hash: string): void {
    if (this.known.has(key)) return;
    if (this.known.size >= HASH_CACHE_MAX) this.known.clear();
    this.known.set(key, hash);
  }
}

export function apiKeyId(key: string): string {
  return sha256(key).slice(0, 16);
}

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * The scope each /v1 route needs, by method and route pattern. A route missing here needs
 * `admin`, so a new route is closed until it is given its scope. The admin views of a device
 * and of a topic show presence and subscribers: `presence:read` is enough for them.
 */
const ROUTE_SCOPES: Record<string, readonly Scope[]> = {
  'POST /v1/notifications': ['publish'],
  'POST /v1/notifications/batch': ['publish'],
  'DELETE /v1/notifications/:id': ['publish'],
  'GET /v1/notifications/:id': ['status:read'],
  'PUT /v1/topics/:topic/devices/:device': ['publish'],
  // A backend registering a device's Web Push subscription (docs/webpush.md).
  'PUT /v1/devices/:device/webpush': ['publish'],
  'DELETE /v1/devices/:device/webpush': ['publish'],
  'DELETE /v1/topics/:topic/devices/:device': ['publish'],
  'GET /v1/admin/devices/:device': ['presence:read', 'admin'],
  'GET /v1/admin/topics/:topic': ['presence:read', 'admin'],
  // The presence API (docs/api.md, "Presence").
  'GET /v1/devices/:device': ['presence:read', 'admin'],
  'GET /v1/users/:user/devices': ['presence:read', 'admin'],
  'GET /v1/topics/:topic/presence': ['presence:read', 'admin'],
  // The console's demo device: a token for the key's app, as a publisher would mint.
  'POST /console/demo-token': ['publish'],
};

export function routeScopes(method: string, url: string | undefined): readonly Scope[] {
  return ROUTE_SCOPES[`${method} ${url}`] ?? ['admin'];
}

export interface AuthDeps {
  apps: AppRegistry;
  /** Runtime keys (admin API / CLI); lookups are cached in it for a few seconds. */
  store: ApiKeyStore;
  /** The deployment's Keys (app `default`): `forApp` gives every other app's. */
  keys: Keys;
}

/**
 * An onRequest hook: resolves `Authorization: Bearer <key>` to its app and scopes and sets
 * `request.tenant`, or refuses with 401 (unknown or expired key) or 403 (scope missing). The key
 * is hashed first and only its sha256 is looked up: in the apps' keys (a map of the live apps),
 * then among the runtime keys in Redis. A hash lookup reveals nothing usable through timing,
 * since the caller cannot choose the hash.
 */
export function authenticator(deps: AuthDeps) {
  const hashes = new KeyHashes();
  // The tenant of each apps-file key, made once per key (a reload makes new key objects).
  const tenants = new WeakMap<object, Tenant>();
  return async function authenticate(req: FastifyRequest, reply?: FastifyReply): Promise<void> {
    const header = req.headers.authorization;
    if (!header) throw new Unauthorized('missing API key: send Authorization: Bearer <key>');
    const m = BEARER.exec(header);
    if (!m) throw new Unauthorized('Authorization must be Bearer <api key>');
    const key = m[1] as string;
    const hash = hashes.of(key);
    const tenant = await resolve(deps, hash, Date.now(), tenants);
    hashes.remember(key, hash);
    req.apiKeyId = hash.slice(0, 16);
    req.tenant = tenant;
    // Later lines of this request (its `request completed` too) name the app and the key's id.
    req.log = req.log.child({ app: tenant.app.id, key: tenant.keyId });
    if (reply) reply.log = req.log;
    // No route matched: the answer is a 404 whatever the key's scopes.
    if (req.routeOptions.url === undefined) return;
    const need = routeScopes(req.method, req.routeOptions.url);
    if (!need.some((s) => tenant.scopes.has(s))) throw new ForbiddenScope(need.join(' or '));
  };
}

async function resolve(
  deps: AuthDeps,
  hash: string,
  now: number,
  tenants: WeakMap<object, Tenant>,
): Promise<Tenant> {
  const fromConfig = deps.apps.keyByHash(hash);
  if (fromConfig) {
    const { app, key } = fromConfig;
    if (key.expiresAt !== undefined && key.expiresAt <= now) throw expired(key.expiresAt);
    let tenant = tenants.get(fromConfig);
    if (!tenant) {
      tenant = {
        app,
        keys: deps.keys.forApp(app.id),
        keyId: key.id,
        scopes: new Set(key.scopes),
        source: 'config',
      };
      tenants.set(fromConfig, tenant);
    }
    return tenant;
  }
  const stored = await deps.store.lookup(hash);
  // A key of an app that is no longer configured is unknown, as is one never issued.
  const app = stored && deps.apps.get(stored.app);
  if (!stored || !app) throw new Unauthorized('invalid API key');
  if (stored.expiresAt !== undefined && stored.expiresAt <= now) throw expired(stored.expiresAt);
  return {
    app,
    keys: deps.keys.forApp(app.id),
    keyId: stored.id,
    scopes: new Set(stored.scopes as Scope[]),
    source: 'redis',
  };
}

const expired = (at: number) => new Unauthorized(`API key expired at ${new Date(at).toISOString()}`);
