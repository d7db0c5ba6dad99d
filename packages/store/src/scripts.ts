import { readFileSync } from 'node:fs';
import type { Result } from 'ioredis';
import type { RedisClient } from './redis.js';

/** Lua scripts live in ../lua beside this package's code; ioredis loads them by SHA and retries on NOSCRIPT. */
function lua(name: string): string {
  return readFileSync(new URL(`../lua/${name}.lua`, import.meta.url), 'utf8');
}

/** A script that uses shared functions: the lib/*.lua files it names are prepended (Redis has no include). */
function withLibs(name: string, ...libs: ('append' | 'status')[]): string {
  return [...libs.map((l) => lua(`lib/${l}`)), lua(name)].join('\n');
}

export type StreamEntryReply = [id: string, fields: string[]];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    heraldAppend(
      stream: string,
      seq: string,
      presence: string,
      mark: string,
      collapse: string,
      ...argv: (string | number)[]
    ): Result<(number | string)[], Context>;
    heraldDeliver(
      stream: string,
      seq: string,
      audience: string,
      status: string,
      mark: string,
      collapse: string,
      ...argv: (string | number)[]
    ): Result<[seq: number, targets: number, bells: number, dup: number], Context>;
    heraldMembership(
      deviceTopics: string,
      members: string,
      cursors: string,
      topicSeq: string,
      presence: string,
      ...argv: (string | number)[]
    ): Result<number, Context>;
    heraldStatus(key: string, ...argv: (string | number)[]): Result<number, Context>;
    heraldStatusKey(key: string, apiKey: string): Result<number, Context>;
    heraldWebhookDead(
      hash: string,
      order: string,
      id: string,
      json: string,
      failedAt: number,
      max: number,
    ): Result<number, Context>;
    heraldWebhookTake(
      hash: string,
      order: string,
      count: number,
      ...ids: string[]
    ): Result<string[], Context>;
    heraldHello(
      presence: string,
      address: string,
      topics: string,
      cursors: string,
      inboxSeq: string,
      info: string,
      ...argv: (string | number)[]
    ): Result<[string[], string[], number], Context>;
    heraldRead(
      stream: string,
      seq: string,
      collapse: string,
      firstId: string,
      count: number,
    ): Result<[number, StreamEntryReply[], string[]], Context>;
    /** numKeys, keys..., ttl, then per key: n, stream/seq pairs (cursor.lua). */
    heraldCursor(numKeys: number, ...keysAndArgv: (string | number)[]): Result<number, Context>;
    /** to, targets ('' to leave), from... (transition.lua). */
    heraldTransition(
      key: string,
      to: string,
      targets: string | number,
      ...from: string[]
    ): Result<string, Context>;
    /** numKeys, keys..., then per key: n, field/increment pairs (counts.lua). */
    heraldCounts(numKeys: number, ...keysAndArgv: (string | number)[]): Result<number, Context>;
    heraldIdempotencyRelease(key: string, id: string): Result<number, Context>;
    heraldIdempotency(key: string, id: string, hash: string, windowMs: number): Result<string[], Context>;
    /** numKeys, node registry, app connection hashes..., since, nodeId, counts... (app-connections.lua). */
    heraldAppConnections(numKeys: number, ...keysAndArgv: (string | number)[]): Result<number[], Context>;
    heraldWebpushPut(key: string, ...argv: (string | number)[]): Result<number, Context>;
    /** numKeys, per device (webpush, cursors) keys, then per device stream, seq (webpush-due.lua). */
    heraldWebpushDue(
      numKeys: number,
      ...keysAndArgv: (string | number)[]
    ): Result<[index: number, fields: string[]][], Context>;
  }
}

const SCRIPTS = {
  heraldAppend: { lua: withLibs('append', 'append'), numberOfKeys: 5 },
  heraldDeliver: { lua: withLibs('deliver', 'append', 'status'), numberOfKeys: 6 },
  heraldMembership: { lua: withLibs('membership', 'append'), numberOfKeys: 5 },
  heraldStatus: { lua: withLibs('status', 'status'), numberOfKeys: 1 },
  heraldStatusKey: { lua: lua('status-key'), numberOfKeys: 1 },
  heraldWebhookDead: { lua: lua('webhook-dead'), numberOfKeys: 2 },
  heraldWebhookTake: { lua: lua('webhook-take'), numberOfKeys: 2 },
  heraldHello: { lua: lua('hello'), numberOfKeys: 6 },
  heraldRead: { lua: lua('read'), numberOfKeys: 3 },
  // Key count given per call: one call carries many devices' cursors or many statuses' counts.
  heraldCursor: { lua: lua('cursor') },
  heraldTransition: { lua: lua('transition'), numberOfKeys: 1 },
  heraldCounts: { lua: withLibs('counts') },
  heraldIdempotencyRelease: { lua: lua('idempotency-release'), numberOfKeys: 1 },
  heraldIdempotency: { lua: lua('idempotency'), numberOfKeys: 1 },
  heraldAppConnections: { lua: lua('app-connections') },
  heraldWebpushPut: { lua: lua('webpush-put'), numberOfKeys: 1 },
  heraldWebpushDue: { lua: lua('webpush-due') },
} as const;

const loaded = new WeakSet<RedisClient>();

/** Registers Herald's scripts on a connection (once per connection object). */
export function withScripts(redis: RedisClient): RedisClient {
  if (loaded.has(redis)) return redis;
  for (const [name, def] of Object.entries(SCRIPTS)) redis.defineCommand(name, def);
  loaded.add(redis);
  return redis;
}
