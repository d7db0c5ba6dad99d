import { randomUUID } from 'node:crypto';
import { AppRegistry } from '@herald/config';
import { DEFAULT_APP, type Keys, type RedisClient } from '@herald/store';
import type { Logger } from 'pino';
import { PresenceDebouncer } from './debouncer.js';

export interface PresencePartDeps {
  redis: RedisClient;
  /** The deployment's keys; `forApp` gives each app's. */
  keys: Keys;
  /** HERALD_APPS_FILE, if any (else the one app `default`). */
  appsFile: string;
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
 * The presence debouncer of every app (debouncer.ts), stepped in one loop: each step reads each
 * app's outbox without blocking (XREADGROUP without BLOCK, so it shares the background
 * connection), so the loop pauses `idleMs` (250 ms: a twentieth of the default window) when no
 * app had anything. Apps follow the apps file's reloads.
 */
export function startPresence(d: PresencePartDeps): PresencePart {
  const apps = d.appsFile
    ? new AppRegistry({ HERALD_APPS_FILE: d.appsFile }, { log: d.log }).watch()
    : undefined;
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
    for (const app of apps ? apps.all().map((a) => a.id) : [DEFAULT_APP]) n += await of(app).step();
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
