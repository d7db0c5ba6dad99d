/**
 * Redis `INFO commandstats` around one phase of a scenario: `CONFIG RESETSTAT` before it, the
 * calls and microseconds of each command after it (issue #14: Redis work per connect). Only for a
 * system with one Redis of its own (`RunningSystem.redisUrl`); the harness's connection adds its
 * own `info` and `config` calls, left out of the figures.
 */
import { Redis } from 'ioredis';

export interface CommandStat {
  calls: number;
  usec: number;
}

export interface CommandStats {
  start(): Promise<void>;
  /** Per command (`evalsha`, `sadd`...), calls and usec since `start`. */
  stop(): Promise<Record<string, CommandStat>>;
}

const OWN = new Set(['info', 'config', 'client|setinfo', 'client', 'hello']);

export function commandStats(url: string): CommandStats {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  return {
    async start() {
      await r.connect();
      await r.config('RESETSTAT');
    },
    async stop() {
      try {
        return parseCommandStats(await r.info('commandstats'));
      } finally {
        r.disconnect();
      }
    },
  };
}

/** `cmdstat_evalsha:calls=6000,usec=123,...` lines into { evalsha: { calls, usec } }. */
export function parseCommandStats(info: string): Record<string, CommandStat> {
  const out: Record<string, CommandStat> = {};
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (!m || OWN.has(m[1]!)) continue;
    out[m[1]!] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}

/** Calls and usec per operation (n operations), with the totals first. */
export function perOperation(stats: Record<string, CommandStat>, n: number) {
  const per: Record<string, { calls: number; usec: number }> = {};
  let calls = 0;
  let usec = 0;
  for (const [cmd, s] of Object.entries(stats).sort((a, b) => b[1].usec - a[1].usec)) {
    calls += s.calls;
    usec += s.usec;
    per[cmd] = { calls: round3(s.calls / n), usec: round3(s.usec / n) };
  }
  return { total: { calls: round3(calls / n), usec: round3(usec / n) }, commands: per };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
