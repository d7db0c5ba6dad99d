import { CloseCode } from '@herald/protocol';
import type { Nodes } from '@herald/store';
import type { Logger } from 'pino';
import { AppScope, type NodeApp, type NodeParts } from './app-scope.js';
import { type DeviceIdentity, verifyAppToken, verifyAppTokenNow } from './auth.js';
import type { AppDirectory, Refusal, SessionDeps, Verifier } from './ports.js';

/**
 * How often a node writes its per-app connection counts and reads the other nodes' (the app cap
 * is approximate by this much: a burst of hellos on several nodes within one interval can pass
 * the cap by what those nodes admitted meanwhile). One script call per interval for all capped
 * apps, none per hello.
 */
export const APP_COUNT_MS = 2000;

/** A node counts in an app's connections while its heartbeat is this many HERALD_HEARTBEAT_MS old. */
const APP_NODE_WINDOW_FACTOR = 3;

/** The app with `webhookEvents` filled from its endpoints (unless given). */
export function withWebhookEvents(a: NodeApp): NodeApp {
  if (a.webhookEvents || !a.webhooks?.length) return a;
  return { ...a, webhookEvents: new Set(a.webhooks.flatMap((w) => w.events)) };
}

/**
 * The apps a node serves (docs/tenancy.md): one `AppScope` each, the token verifier that picks
 * the app from the token's `aud`, each app's origins, and its connection cap across all nodes.
 * `set` applies a (re)loaded config: new apps start, removed apps' sessions are closed (4001,
 * `app <id> removed`) and their doorbells unsubscribed, other apps' sessions are untouched.
 */
export class NodeApps implements AppDirectory, Verifier {
  private readonly scopes = new Map<string, AppScope>();
  /** The only app, when there is one: its tokens are verified without reading `aud` first. */
  private only: AppScope | undefined;
  private counter: NodeJS.Timeout | undefined;
  private parts!: NodeParts;

  constructor(private readonly log: Logger) {}

  /** Builds the apps of the first config (before `start`). */
  init(parts: NodeParts, apps: readonly NodeApp[]): void {
    this.parts = parts;
    for (const a of apps) this.scopes.set(a.id, new AppScope(parts, withWebhookEvents(a)));
    this.only = this.scopes.size === 1 ? [...this.scopes.values()][0] : undefined;
  }

  get(id: string): AppScope | undefined {
    return this.scopes.get(id);
  }

  all(): IterableIterator<AppScope> {
    return this.scopes.values();
  }

  async start(nodes: Nodes, heartbeatMs: number): Promise<void> {
    const withinMs = APP_NODE_WINDOW_FACTOR * heartbeatMs;
    await Promise.all([...this.scopes.values()].map((s) => s.start()));
    this.counter = setInterval(() => void this.count(nodes, withinMs), APP_COUNT_MS);
    this.counter.unref();
    await this.count(nodes, withinMs);
  }

  /** Writes this node's count of each capped app and reads the other nodes' (one script call). */
  private async count(nodes: Nodes, withinMs: number): Promise<void> {
    const capped = [...this.scopes.values()].filter((s) => s.cap !== undefined);
    if (capped.length === 0) return;
    try {
      const others = await nodes.appConnections(
        this.parts.nodeId,
        capped.map((s) => ({ keys: s.keys, connections: s.hub.appSize })),
        withinMs,
      );
      capped.forEach((s, i) => {
        s.others = others[i] ?? 0;
      });
    } catch (err) {
      // The last counts stay in force: a Redis outage neither opens nor closes the cap.
      this.log.warn({ err: (err as Error).message }, 'app connection count failed');
    }
  }

  /** Applies a reloaded config; resolves once new apps are subscribed and removed ones are closed. */
  async set(given: readonly NodeApp[]): Promise<void> {
    const apps = given.map(withWebhookEvents);
    const next = new Map(apps.map((a) => [a.id, a]));
    const removed = [...this.scopes.values()].filter((s) => !next.has(s.id));
    const added: AppScope[] = [];
    for (const a of apps) {
      const s = this.scopes.get(a.id);
      if (s) s.update(a);
      else {
        const scope = new AppScope(this.parts, a);
        this.scopes.set(a.id, scope);
        added.push(scope);
      }
    }
    for (const s of removed) this.scopes.delete(s.id);
    this.only = this.scopes.size === 1 ? [...this.scopes.values()][0] : undefined;
    for (const s of removed) {
      let n = 0;
      for (const c of this.parts.connections)
        if (c.identity?.app === s.id) {
          c.close(CloseCode.Unauthorized, `app ${s.id} removed`);
          n++;
        }
      this.log.info({ app: s.id, closed: n }, 'app removed');
    }
    await Promise.all([...added.map((s) => s.start()), ...removed.map((s) => s.stop())]);
    if (added.length > 0) this.log.info({ apps: added.map((s) => s.id) }, 'apps added');
  }

  /** Distinct devices connected to this node, all apps (metrics). */
  readonly deviceCount = (): number => {
    let n = 0;
    for (const s of this.scopes.values()) n += s.hub.deviceCount();
    return n;
  };

  /** Each app's sessions on this node (metrics). */
  readonly counts = (): [string, number][] => [...this.scopes.values()].map((s) => [s.id, s.hub.appSize]);

  /** Writes every app's pending counts and cursors. */
  async flush(): Promise<void> {
    await Promise.all([...this.scopes.values()].map((s) => s.flush()));
  }

  async stop(nodes: Nodes, nodeId: string): Promise<void> {
    clearInterval(this.counter);
    await Promise.all([...this.scopes.values()].map((s) => s.stop()));
    const capped = [...this.scopes.values()].filter((s) => s.cap !== undefined).map((s) => s.keys);
    await nodes.remove(nodeId, capped).catch(() => undefined);
  }

  // ---- AppDirectory ----

  scope(app: string): SessionDeps | undefined {
    return this.scopes.get(app)?.deps;
  }

  admit(app: string): Refusal | undefined {
    const s = this.scopes.get(app);
    if (!s || s.cap === undefined) return undefined;
    if (s.others + s.hub.appSize < s.cap) return undefined;
    return { code: CloseCode.AppCapacity, reason: `app ${app} is at its connection limit (${s.cap})` };
  }

  originAllowed(app: string, origin: string | undefined): boolean {
    if (origin === undefined) return true;
    const o = this.scopes.get(app)?.origins;
    return !o || o.has(origin);
  }

  /**
   * Whether some app lists the origin by name (not "any origin"): only then may a browser send
   * the token cookie across origins (CORS credentials).
   */
  originListed(origin: string): boolean {
    for (const s of this.scopes.values()) if (s.origins?.has(origin)) return true;
    return false;
  }

  /** Whether any app allows the origin: the check before the app is known (WebSocket upgrade, CORS). */
  anyOriginAllowed(origin: string): boolean {
    for (const s of this.scopes.values()) if (!s.origins || s.origins.has(origin)) return true;
    return false;
  }

  // ---- Verifier ----

  /**
   * Verifies a device token with the keys of the app its `aud` names (no `aud`: `default`): the
   * unverified payload is read only to choose the app. An unknown app, or one without token keys,
   * is refused as an invalid token. With one app only, the token goes straight to its verifier
   * and the verified `aud` is compared after (the single-app hello does no extra parse).
   */
  verify(token: string): Promise<DeviceIdentity> {
    return verifyAppToken(token, (id) => this.scopes.get(id), this.only?.id);
  }

  /** `verify` without a promise for HS256 tokens (the usual hello), else undefined. */
  verifyNow(token: string): DeviceIdentity | undefined {
    return verifyAppTokenNow(token, (id) => this.scopes.get(id), this.only?.id);
  }
}
