import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** File descriptors a child may open: what `ulimit -n` in a bash wrapper can reach. */
export const WANTED_NOFILE = 200_000;

function readNum(file: string): number | undefined {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** This process's RLIMIT_NOFILE, soft and hard, from /proc/self/limits. */
export function nofileLimits(): { soft: number; hard: number } {
  const text = readText('/proc/self/limits') ?? '';
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const num = (s: string | undefined) => (s === undefined || s === 'unlimited' ? 1 << 30 : Number(s));
  return { soft: num(m?.[1]), hard: num(m?.[2]) };
}

/**
 * The descriptor limit a child started through `bash -c 'ulimit -n N; exec ...'` really gets:
 * raising the hard limit needs CAP_SYS_RESOURCE, which a container may not grant.
 */
export function reachableNofile(wanted = WANTED_NOFILE): number {
  const res = spawnSync(
    'bash',
    ['-c', `ulimit -n ${wanted} 2>/dev/null || ulimit -n $(ulimit -Hn); ulimit -n`],
    {
      encoding: 'utf8',
      timeout: 5000,
    },
  );
  const n = Number.parseInt(res.stdout?.trim() ?? '', 10);
  return Number.isFinite(n) ? n : nofileLimits().soft;
}

/** `bash -c` script that raises the descriptor limit as far as allowed, then execs the command. */
export function ulimitWrapped(command: string, args: readonly string[], wanted = WANTED_NOFILE): string[] {
  const quoted = [command, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return ['-c', `ulimit -n ${wanted} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`];
}

export interface KernelLimits {
  nofileSoft: number;
  nofileHard: number;
  /** What a wrapped child reaches (see reachableNofile). */
  nofileReachable: number;
  fileMax?: number;
  nrOpen?: number;
  somaxconn?: number;
  tcpMaxSynBacklog?: number;
  ipLocalPortRange?: string;
  tcpTwReuse?: number;
  conntrackMax?: number;
  conntrackCount?: number;
  tcpMem?: string;
  /** Human-readable problems that bound what the bench can reach. */
  warnings: string[];
}

export function kernelLimits(): KernelLimits {
  const { soft, hard } = nofileLimits();
  const reach = reachableNofile();
  const l: KernelLimits = {
    nofileSoft: soft,
    nofileHard: hard,
    nofileReachable: reach,
    fileMax: readNum('/proc/sys/fs/file-max'),
    nrOpen: readNum('/proc/sys/fs/nr_open'),
    somaxconn: readNum('/proc/sys/net/core/somaxconn'),
    tcpMaxSynBacklog: readNum('/proc/sys/net/ipv4/tcp_max_syn_backlog'),
    ipLocalPortRange: readText('/proc/sys/net/ipv4/ip_local_port_range')?.replace(/\s+/, '-'),
    tcpTwReuse: readNum('/proc/sys/net/ipv4/tcp_tw_reuse'),
    conntrackMax: readNum('/proc/sys/net/netfilter/nf_conntrack_max'),
    conntrackCount: readNum('/proc/sys/net/netfilter/nf_conntrack_count'),
    tcpMem: readText('/proc/sys/net/ipv4/tcp_mem')?.replace(/\s+/g, ' '),
    warnings: [],
  };
  if (reach < WANTED_NOFILE)
    l.warnings.push(
      `per-process descriptor limit is ${reach} (hard limit ${hard}; raising it needs CAP_SYS_RESOURCE): ` +
        'each server process and load generator holds fewer than that many sockets',
    );
  if ((l.somaxconn ?? 4096) < 4096) l.warnings.push(`net.core.somaxconn is ${l.somaxconn}`);
  if ((l.fileMax ?? Infinity) < 200_000) l.warnings.push(`fs.file-max is ${l.fileMax}`);
  return l;
}

/** Sockets one process can hold, leaving room for its other descriptors. */
export function socketsPerProcess(reserve = 600): number {
  return Math.max(1000, reachableNofile() - reserve);
}
