import { randomUUID } from 'node:crypto';
import type { Keys, RedisClient } from '@herald/store';
import type { Logger } from 'pino';
import { PresenceDebouncer } from './debouncer.js';

export interface PresencePartDeps {
  redis: RedisClient;
  /** The deployment's keys; `forApp` gives each app's. */
  keys: Keys;
  /**
   * The apps whose endpoints want `device.online` or `device.offline` now (the webhooks part's
   * `deviceApps`, which follows the apps file's reloads; none when webhooks are off).
   */
  apps: () => readonly string[];
  windowMs: number;
  log: Logger;
  /** Pause between steps when there was nothing to do. */
  idleMs?: number;
}

export interface PresencePart {
  /** One step over every app now (tests); the loop runs them on its own. */
  step(): Promise<number>;
  close(): Promise<void>;
}

/**
 * The presence debouncer of each app that wants device webhooks (debouncer.ts), stepped in one
 * loop: each step reads each app's outbox without blocking (XREADGROUP without BLOCK, so it
 * shares the background connection), so the loop pauses `idleMs` (250 ms: a twentieth of the
 * default window) when no app had anything. An idle step costs about 4 Redis commands per app,
 * so apps that want neither `device.online` nor `device.offline` get no debouncer at all (their
 * nodes record no raw device events either: apps/node app-scope.ts); their state in Redis stays
 * and the sweep settles it if they want the events again.
 */
export function startPresence(d: PresencePartDeps): PresencePart {
  const consumer = `w-${randomUUID().slice(0, 8)}`;
  const debouncers = new Map<string, PresenceDebouncer>();
  const of = (app: string) => {
    let db = debouncers.get(app);
    if (!db) {
      db = new PresenceDebouncer({
        redis: d.redis,
        keys: d.keys.forApp(app),
        windowMs: d.windowMs,
        consumer,
      });
      debouncers.set(app, db);
    }
    return db;
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let failing = false;
  const step = async () => {
    let n = 0;
    const apps = d.apps();
    // Bounded by the apps: a debouncer of an app that no longer wants device events is dropped.
    if (debouncers.size > apps.length)
      for (const app of debouncers.keys()) if (!apps.includes(app)) debouncers.delete(app);
    for (const app of apps) n += await of(app).step();
    return n;
  };
  const loop = () => {
    if (stopped) return;
    running = step().then(
      (n) => {
        if (failing) d.log.info('presence debouncer back');
        failing = false;
        timer = setTimeout(loop, n > 0 ? 0 : (d.idleMs ?? 250));
      },
      (err: Error) => {
        if (!failing) d.log.warn({ err: err.message }, 'presence debouncer step failed; retrying');
        failing = true;
        timer = setTimeout(loop, 1000);
      },
    );
  };
  loop();
  return {
    step,
    async close() {
      stopped = true;
      clearTimeout(timer);
      await running.catch(() => undefined);
    },
  };
}
