import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import type { Static } from 'typebox';
import { parse as parseYaml } from 'yaml';
import {
  type AppsFile,
  appsFileProblems,
  describe,
  type limitsSchema,
  SCOPES,
  type SchemaError,
  type Scope,
} from './apps-schema.js';
import { ConfigError, list } from './load.js';
import { type WebhookEndpoint, webhooksFromEnv } from './webhooks.js';

/**
 * Apps (issue #18): each app has its API keys, how its device tokens are verified, its allowed
 * origins and its limits. They come from HERALD_APPS_FILE (JSON, or YAML when the name ends in
 * .yaml/.yml) or, without it, from today's variables as the single app `default` so that a
 * deployment without the file works exactly as before. docs/tenancy.md is the contract.
 */
export { SCOPES, type Scope } from './apps-schema.js';

/** The app today's single-tenant variables describe; its Redis keys are today's keys. */
export const DEFAULT_APP = 'default';

export interface AppKey {
  /** Shown in key listings and logs; never the key. */
  id: string;
  /** sha256 hex of the key: all Herald ever stores. */
  sha256: string;
  scopes: Scope[];
  /** Epoch ms after which the key is refused (401); undefined = no expiry. */
  expiresAt?: number;
}

export interface AppTokens {
  secret?: string;
  jwksUrl?: string;
  jwksFile?: string;
  issuer?: string;
}

export type AppLimits = Static<typeof limitsSchema>;

export interface AppConfig {
  id: string;
  keys: AppKey[];
  tokens: AppTokens;
  /** Origins allowed for browser clients; undefined = any. */
  allowedOrigins?: string[];
  /** Absent limits are unlimited. */
  limits: AppLimits;
  /** The app's own VAPID pair for Web Push (docs/webpush.md); absent: HERALD_VAPID_*. */
  vapid?: AppVapid;
  /** Webhook endpoints of the app's keys (docs/webhooks.md); absent: none. */
  webhooks?: WebhookEndpoint[];
}

export interface AppVapid {
  /** base64url, uncompressed P-256 point (65 bytes). */
  publicKey: string;
  /** base64url, 32 bytes. Never logged. */
  privateKey: string;
  /** mailto: or https: contact for push services. */
  subject: string;
}

export interface AppsConfig {
  apps: AppConfig[];
  /** The apps file it came from, or 'env' for the single `default` app. */
  source: string;
}

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

const positive = (v: string | undefined): number | undefined => {
  const n = Number(v);
  return v && Number.isInteger(n) && n > 0 ? n : undefined;
};

/** The single app `default` from today's variables (values are checked by each app's settings schema). */
export function appsFromEnv(env: NodeJS.ProcessEnv): AppsConfig {
  // Ids by position (`env-1`, ...): listings and logs then show nothing of a key or its hash.
  // Idempotency-Keys stay scoped by the API's apiKeyId (from the hash), as before.
  const keys = [...new Set(list(env.HERALD_API_KEYS ?? ''))].map((k, i) => ({
    id: `env-${i + 1}`,
    sha256: sha256Hex(k),
    scopes: [...SCOPES],
  }));
  const tokens: AppTokens = {};
  if (env.HERALD_TOKEN_SECRET) tokens.secret = env.HERALD_TOKEN_SECRET;
  if (env.HERALD_JWKS_URL) tokens.jwksUrl = env.HERALD_JWKS_URL;
  if (env.HERALD_JWKS_FILE) tokens.jwksFile = env.HERALD_JWKS_FILE;
  if (env.HERALD_TOKEN_ISSUER) tokens.issuer = env.HERALD_TOKEN_ISSUER;
  const origins = list(env.HERALD_ALLOWED_ORIGINS ?? '*');
  const limits: AppLimits = {};
  const set = (name: keyof AppLimits, v: string | undefined) => {
    const n = positive(v);
    if (n !== undefined) limits[name] = n;
  };
  set('publishesPerSecond', env.HERALD_RATE_PUBLISHES_PER_S);
  set('publishBurst', env.HERALD_RATE_PUBLISH_BURST);
  set('keyPublishesPerSecond', env.HERALD_RATE_KEY_PUBLISHES_PER_S);
  set('keyPublishBurst', env.HERALD_RATE_KEY_PUBLISH_BURST);
  set('notificationsPerSecond', env.HERALD_RATE_NOTIFICATIONS_PER_S);
  const app: AppConfig = { id: DEFAULT_APP, keys, tokens, limits };
  if (origins.length > 0 && !origins.includes('*')) app.allowedOrigins = origins;
  // HERALD_WEBHOOKS: endpoints for every key of HERALD_API_KEYS (keyId undefined).
  const hooks = webhooksFromEnv(env.HERALD_WEBHOOKS, (e) => describe(e as SchemaError));
  if (hooks.problems.length > 0) throw new ConfigError(hooks.problems);
  if (hooks.endpoints.length > 0) app.webhooks = hooks.endpoints;
  return { apps: [app], source: 'env' };
}

/** Reads and checks an apps file; throws ConfigError naming the file and every bad field. */
export function readAppsFile(path: string): AppsConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`HERALD_APPS_FILE ${path}: cannot read (${(err as Error).message})`]);
  }
  let data: unknown;
  try {
    data = /^\.ya?ml$/i.test(extname(path)) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError([
      `HERALD_APPS_FILE ${path}: not valid ${extname(path) || 'JSON'} (${(err as Error).message})`,
    ]);
  }
  const problems = appsFileProblems(data);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${path}: ${p}`));
  return { apps: (data as AppsFile).apps.map(toApp), source: path };
}

function toApp(a: AppsFile['apps'][number]): AppConfig {
  const app: AppConfig = {
    id: a.id,
    keys: a.keys.map((k) => {
      const key: AppKey = { id: k.id, sha256: k.sha256, scopes: [...new Set(k.scopes)] as Scope[] };
      if (k.expiresAt) key.expiresAt = Date.parse(k.expiresAt);
      return key;
    }),
    tokens: { ...a.tokens },
    limits: { ...a.limits },
  };
  if (a.allowedOrigins && !a.allowedOrigins.includes('*')) app.allowedOrigins = [...a.allowedOrigins];
  if (a.vapid) app.vapid = { ...a.vapid };
  const hooks = a.keys.flatMap((k) =>
    (k.webhooks ?? []).map((w): WebhookEndpoint => ({ ...w, events: [...w.events], keyId: k.id })),
  );
  if (hooks.length > 0) app.webhooks = hooks;
  return app;
}

/** The apps: from HERALD_APPS_FILE when set, else the single `default` app from the environment. */
export function loadApps(env: NodeJS.ProcessEnv = process.env): AppsConfig {
  return env.HERALD_APPS_FILE ? readAppsFile(env.HERALD_APPS_FILE) : appsFromEnv(env);
}

/** pino-compatible. */
export interface AppsLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type AppsListener = (apps: readonly AppConfig[], previous: readonly AppConfig[]) => void;

/**
 * The live apps of a process. `reload()` re-reads the file (SIGHUP and a debounced file watch
 * call it after `watch()`); a file that fails to read or validate keeps the current apps and is
 * logged. Listeners run after each change that took effect.
 */
export class AppRegistry {
  private config: AppsConfig;
  private byId = new Map<string, AppConfig>();
  private byHash = new Map<string, { app: AppConfig; key: AppKey }>();
  private listeners = new Set<AppsListener>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly onHup = () => this.reload();

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly opts: { log?: AppsLog | undefined; debounceMs?: number; watchFile?: boolean } = {},
  ) {
    this.config = loadApps(env);
    this.index();
  }

  /** The apps file, or undefined for the single app from the environment. */
  get file(): string | undefined {
    return this.env.HERALD_APPS_FILE || undefined;
  }
  get(id: string): AppConfig | undefined {
    return this.byId.get(id);
  }
  all(): readonly AppConfig[] {
    return this.config.apps;
  }
  /** The config key with this sha256 hex and its app. */
  keyByHash(sha256: string): { app: AppConfig; key: AppKey } | undefined {
    return this.byHash.get(sha256);
  }

  onChange(listener: AppsListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads the apps; true when they changed. A bad file keeps the current apps (logged, false). */
  reload(): boolean {
    let next: AppsConfig;
    try {
      next = loadApps(this.env);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      this.opts.log?.error({ file: this.file, problems }, 'apps reload failed: keeping the current apps');
      return false;
    }
    if (JSON.stringify(next.apps) === JSON.stringify(this.config.apps)) return false;
    const previous = this.config.apps;
    this.config = next;
    this.index();
    this.opts.log?.info({ file: this.file, apps: next.apps.map((a) => a.id) }, 'apps reloaded');
    for (const l of this.listeners) {
      try {
        l(next.apps, previous);
      } catch (err) {
        this.opts.log?.error({ err }, 'apps change listener failed');
      }
    }
    return true;
  }

  /**
   * Reloads on SIGHUP and, with a file, when it changes (debounced: editors write in steps).
   * `log` (pino-compatible) replaces the constructor's, for processes that have one only later.
   */
  watch(log?: AppsLog): this {
    if (log) this.opts.log = log;
    if (this.watcher || this.listenersOnSignal()) return this;
    process.on('SIGHUP', this.onHup);
    const file = this.file;
    if (!file || this.opts.watchFile === false) return this;
    const name = basename(file);
    try {
      // The directory, not the file: editors and Kubernetes ConfigMaps replace the file (a new
      // inode, or the `..data` symlink swap), which a watch on the file itself stops seeing.
      this.watcher = watch(dirname(file), (_event, changed) => {
        if (changed && changed !== name && !String(changed).startsWith('..')) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.reload(), this.opts.debounceMs ?? 200);
        this.timer.unref();
      });
      this.watcher.unref();
    } catch (err) {
      this.opts.log?.error({ file, err }, 'cannot watch the apps file: reload with SIGHUP');
    }
    return this;
  }

  close(): void {
    process.off('SIGHUP', this.onHup);
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  private listenersOnSignal(): boolean {
    return process.listeners('SIGHUP').includes(this.onHup);
  }

  private index(): void {
    this.byId = new Map(this.config.apps.map((a) => [a.id, a]));
    this.byHash = new Map(
      this.config.apps.flatMap((app) => app.keys.map((key) => [key.sha256, { app, key }])),
    );
  }
}
