import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { RedisClient } from './redis.js';

/** Lua scripts live in ../lua beside this package's code; ioredis loads them by SHA and retries on NOSCRIPT. */
function lua(name: string): string {
  return readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');
}

/** A script that uses the shared append functions: lib/append.lua is prepended (Redis has no include). */
function withAppendLib(name: string): string {
  return `${lua('lib/append')}\n${lua(name)}`;
}

export type StreamEntryReply = [id: string, fields: string[]];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    heraldAppend(
      stream: string,
      seq: string,
      presence: string,
      ...argv: (string | number)[]
    ): Result<(number | string)[], Context>;
    heraldDeliver(
      stream: string,
      seq: string,
      audience: string,
      status: string,
      ...argv: (string | number)[]
    ): Result<[number, number], Context>;
    heraldHello(
      presence: string,
      address: string,
      topics: string,
      cursors: string,
      inboxSeq: string,
      ...argv: (string | number)[]
    ): Result<[string[], string[], number], Context>;
    heraldRead(
      stream: string,
      seq: string,
      firstId: string,
      count: number,
    ): Result<[number, StreamEntryReply[]], Context>;
    /** numKeys, keys..., ttl, then per key: n, stream/seq pairs (cursor.lua). */
    heraldCursor(numKeys: number, ...keysAndArgv: (string | number)[]): Result<number, Context>;
    heraldTransition(key: string, to: string, ...from: string[]): Result<string, Context>;
    /** numKeys, keys..., then per key: n, field/increment pairs (counts.lua). */
    heraldCounts(numKeys: number, ...keysAndArgv: (string | number)[]): Result<number, Context>;
    heraldIdempotencyRelease(key: string, id: string): Result<number, Context>;
    heraldIdempotency(key: string, id: string, hash: string, windowMs: number): Result<string[], Context>;
  }
}

const SCRIPTS = {
  heraldAppend: { lua: withAppendLib('append'), numberOfKeys: 3 },
  heraldDeliver: { lua: withAppendLib('deliver'), numberOfKeys: 4 },
  heraldHello: { lua: lua('hello'), numberOfKeys: 5 },
  heraldRead: { lua: lua('read'), numberOfKeys: 2 },
  // Key count given per call: one call carries many devices' cursors or many statuses' counts.
  heraldCursor: { lua: lua('cursor') },
  heraldTransition: { lua: lua('transition'), numberOfKeys: 1 },
  heraldCounts: { lua: lua('counts') },
  heraldIdempotencyRelease: { lua: lua('idempotency-release'), numberOfKeys: 1 },
  heraldIdempotency: { lua: lua('idempotency'), numberOfKeys: 1 },
} as const;

const loaded = new WeakSet<RedisClient>();

/** Registers Herald's scripts on a connection (once per connection object). */
export function withScripts(redis: RedisClient): RedisClient {
  if (loaded.has(redis)) return redis;
  for (const [name, def] of Object.entries(SCRIPTS)) redis.defineCommand(name, def);
  loaded.add(redis);
  return redis;
}
