import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux). */
export const CLK_TCK = (() => {
  const res = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const n = Number.parseInt(res.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

export interface ProcSample {
  pid: number;
  /** utime + stime, seconds. */
  cpuS: number;
  /** VmRSS, RssAnon and RssShmem from /proc/<pid>/status, KiB. */
  rssKb: number;
  anonKb: number;
  shmemKb: number;
}

/** The fields after the command name `(comm)`, which may itself hold spaces and parentheses. */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // fields[0] is field 3 (state) of proc(5).
  return text
    .slice(close + 2)
    .trim()
    .split(' ');
}

/** One reading of a process; undefined when it is gone. */
export function readProc(pid: number): ProcSample | undefined {
  const f = statFields(pid);
  if (!f) return undefined;
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  let status = '';
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return {
    pid,
    cpuS: (utime + stime) / CLK_TCK,
    rssKb: kb('VmRSS'),
    anonKb: kb('RssAnon'),
    shmemKb: kb('RssShmem'),
  };
}

/** PIDs whose parent is `pid` (e.g. the workers of an nginx master). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && Number(f[1]) === pid) out.push(Number(name));
  }
  return out;
}

/** A named set of server processes whose CPU and memory are added up. */
export interface ProcGroup {
  name: string;
  /** Counted in the system's "server CPU" (false: reported beside it, e.g. the balancer). */
  counted: boolean;
  pids(): number[];
}

export interface GroupSample {
  name: string;
  counted: boolean;
  pids: number;
  cpuS: number;
  rssKb: number;
  anonKb: number;
  shmemKb: number;
}

export interface Snapshot {
  at: number;
  groups: GroupSample[];
}

export function snapshot(groups: readonly ProcGroup[]): Snapshot {
  return {
    at: Date.now(),
    groups: groups.map((g) => {
      const samples = g.pids().map(readProc);
      const s: GroupSample = {
        name: g.name,
        counted: g.counted,
        pids: 0,
        cpuS: 0,
        rssKb: 0,
        anonKb: 0,
        shmemKb: 0,
      };
      for (const p of samples) {
        if (!p) continue;
        s.pids++;
        s.cpuS += p.cpuS;
        s.rssKb += p.rssKb;
        s.anonKb += p.anonKb;
        s.shmemKb += p.shmemKb;
      }
      return s;
    }),
  };
}

export interface Usage {
  wallS: number;
  /** CPU seconds of the counted groups. */
  serverCpuS: number;
  /** CPU seconds of every group (counted or not). */
  allCpuS: number;
  /** Per group: CPU seconds used, RSS at the end and its change, KiB. */
  groups: Record<string, { cpuS: number; rssKb: number; rssDeltaKb: number; counted: boolean }>;
  /** RSS change of the counted groups, KiB. */
  serverRssDeltaKb: number;
  serverRssKb: number;
}

/** What happened between two snapshots of the same groups. */
export function usage(a: Snapshot, b: Snapshot): Usage {
  const u: Usage = {
    wallS: (b.at - a.at) / 1000,
    serverCpuS: 0,
    allCpuS: 0,
    groups: {},
    serverRssDeltaKb: 0,
    serverRssKb: 0,
  };
  b.groups.forEach((g, i) => {
    const before = a.groups[i]!;
    const cpuS = Math.max(0, g.cpuS - before.cpuS);
    const rssDeltaKb = g.rssKb - before.rssKb;
    u.groups[g.name] = { cpuS: round(cpuS, 3), rssKb: g.rssKb, rssDeltaKb, counted: g.counted };
    u.allCpuS += cpuS;
    if (g.counted) {
      u.serverCpuS += cpuS;
      u.serverRssDeltaKb += rssDeltaKb;
      u.serverRssKb += g.rssKb;
    }
  });
  u.serverCpuS = round(u.serverCpuS, 3);
  u.allCpuS = round(u.allCpuS, 3);
  return u;
}

/** Whole-machine CPU (all cores) from /proc/stat: busy and total jiffies. */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const n = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (n[3] ?? 0) + (n[4] ?? 0);
  const total = n.reduce((s, x) => s + x, 0);
  return { busy: total - idle, total };
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Master and worker PIDs of an nginx started in the foreground. */
export function nginxGroup(name: string, masterPid: () => number, counted: boolean): ProcGroup {
  return {
    name,
    counted,
    pids: () => {
      const m = masterPid();
      return m > 0 ? [m, ...childPids(m)] : [];
    },
  };
}
