import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Balancer, Upstream } from './balancer.js';
import { findExecutable, installCommand } from './bins.js';
import { renderTemplate } from './nginx.js';
import { freePort } from './ports.js';
import { ManagedProcess, pidAlive, tailFile } from './proc.js';
import { waitFor, waitForTcp } from './wait.js';

export const HAPROXY_MISSING = `haproxy not found. Install it with: ${installCommand(['haproxy'])} (or set HAPROXY_BIN)`;

/** infra/haproxy/haproxy.cfg.template, found from this package (src/ or dist/). */
export const HAPROXY_TEMPLATE = fileURLToPath(new URL('../../haproxy/haproxy.cfg.template', import.meta.url));

/** The frontend's name in the template (the reload watches for it being stopped in old workers). */
const FRONTEND = 'herald';
const BACKEND = 'herald_nodes';

export interface HaproxyConfOptions {
  upstreams: readonly Upstream[];
  /** `host:port` HAProxy listens on. */
  listen: string;
  /** Absolute prefix dir: pid file (and, by default, the stats socket). */
  prefix: string;
  /** Admin socket path (default `<prefix>/haproxy.sock`). */
  statsSocket?: string;
  /** `maxconn` per node, at the balancer (default 10000). */
  maxConns?: number;
  /**
   * Whole-process `maxconn` (default: maxConns x upstreams + 100, capped so that HAProxy can get
   * 2 descriptors per connection under the hard RLIMIT_NOFILE).
   */
  globalMaxConn?: number;
  /** Idle timeout of a session (client, server, tunnel), seconds; must exceed the heartbeat (default 75). */
  timeoutS?: number;
  /** Default 3. */
  connectTimeoutS?: number;
  /** How long a session waits when every eligible node is at maxconn (default 5). */
  queueTimeoutS?: number;
  /**
   * Health check interval (default 500 ms); `fall` failures in a row mark a node down, `rise` successes
   * up (defaults 3 / 2). With the default check timeout a node frozen by SIGSTOP is DOWN after 4.1-4.5 s
   * (measured; see the template), within the 5 s after which its clients' first reconnects can come.
   */
  checkIntervalMs?: number;
  checkFall?: number;
  checkRise?: number;
  /** No answer to a check within this: a failed check (default 1000 ms). */
  checkTimeoutMs?: number;
  /** `send-proxy-v2` (and `check-send-proxy`) on every server (default false; only when the nodes expect it). */
  proxyProtocol?: boolean;
  /** Old workers are killed this long after a reload or soft stop (default 30). */
  hardStopAfterS?: number;
  /** The `log` target (default `stdout format raw local0 info`). */
  logTarget?: string;
  /** `user`/`group` lines or '' (default: set only when running as root). */
  user?: string;
}

export interface StartHaproxyOptions
  extends Omit<HaproxyConfOptions, 'listen' | 'prefix' | 'statsSocket' | 'user' | 'logTarget'> {
  /** Default: a free port. */
  listenPort?: number;
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Prefix dir (conf, pid file, sockets). Default: a new temp dir. */
  dir?: string;
  /** Where the log goes (default `<dir>/logs`). */
  logDir?: string;
  /** File name inside logDir (default haproxy.log): master notices, worker warnings, one line per session. */
  logName?: string;
  /** Default 15 s (start and each reload). */
  readyTimeoutMs?: number;
}

export interface HaproxyServerState {
  /** Server name in the config: `<host>:<port>`. */
  name: string;
  host: string;
  port: number;
  /** `UP`, `DOWN`, `MAINT`, `DRAIN`, `UP 1/2` (going down), `DOWN 1/2` (going up), `no check`. */
  status: string;
  /** Sessions open right now. */
  sessions: number;
  /** Last health check, e.g. `L7OK`, `L7STS` (bad status), `L4CON` (refused). */
  checkStatus: string;
}

export interface HaproxyProcs {
  master: number;
  /** Current worker(s). */
  workers: number[];
  /** Workers from before a reload that still hold sessions. */
  oldWorkers: number[];
  /** Failed reloads since start. */
  failedReloads: number;
}

export interface HaproxyHandle extends Balancer {
  readonly kind: 'haproxy';
  /** stdout and stderr of master and workers: notices, warnings, one `tcplog` line per session. */
  readonly logFile: string;
  /** Admin socket of the current worker (`show stat`, `set server ... state drain`). */
  readonly statsSocket: string;
  /** Master CLI socket (`show proc`, `reload`). */
  readonly masterSocket: string;
  /** `send-proxy-v2`: each session starts with a PROXY v2 header, health checks with a LOCAL one. */
  readonly proxyProtocol: boolean;
  /** Master, worker and old worker PIDs (from the master CLI). */
  procs(): Promise<HaproxyProcs>;
  /** Health and load of every node, from the current worker's `show stat`. */
  servers(): Promise<HaproxyServerState[]>;
  /** One command on the admin socket; resolves with the answer. */
  command(cmd: string): Promise<string>;
}

export interface HaproxyInfo {
  bin: string;
  version: string;
}

/** Finds haproxy (HAPROXY_BIN or PATH and the sbin dirs) and its version; throws HAPROXY_MISSING when absent. */
export function haproxyInfo(): HaproxyInfo {
  const bin = findExecutable('haproxy', 'HAPROXY_BIN');
  if (!bin) throw new Error(HAPROXY_MISSING);
  const res = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  const text = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.status !== 0) throw new Error(`${HAPROXY_MISSING}\n(${bin} -v failed: ${text.trim()})`);
  const version = /HA-?Proxy version (\S+)/i.exec(text)?.[1] ?? 'unknown';
  const [major = 0, minor = 0] = version.split(/[.-]/).map(Number);
  if (major < 2 || (major === 2 && minor < 2)) {
    throw new Error(`haproxy ${version} at ${bin} is too old (2.2 or later needed). ${HAPROXY_MISSING}`);
  }
  return { bin, version };
}

/** The hard RLIMIT_NOFILE of this process (inherited by children); Infinity when unknown or unlimited. */
function nofileHardLimit(): number {
  try {
    const line = /^Max open files\s+\S+\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    const n = Number(line?.[1]);
    return Number.isFinite(n) && n > 0 ? n : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** The `user`/`group` lines: only when the master runs as root (the worker drops privileges); '' otherwise. */
function defaultUserLines(): string {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return '';
  let group = 'nobody';
  try {
    if (/^nogroup:/m.test(fs.readFileSync('/etc/group', 'utf8'))) group = 'nogroup';
  } catch {
    // keep nobody
  }
  return `    user nobody\n    group ${group}`;
}

/** HAProxy 2.6 keys its hash ring on ids (the id times 4096 must fit 32 bits): 1 .. 2^20-1. */
const MAX_SERVER_ID = 0xfffff;

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** `host:port`, the server's name in the config and stats. */
function serverName(u: Upstream): string {
  return `${u.host}:${u.port}`;
}

/**
 * A stable server id per address, so a node keeps its place on the hash ring when others are added or
 * removed (HAProxy 2.6 has no `hash-key addr-port`). Collisions are resolved in address order.
 */
export function haproxyServerIds(upstreams: readonly Upstream[]): Map<string, number> {
  const ids = new Map<string, number>();
  const taken = new Set<number>();
  const names = [...new Set(upstreams.map(serverName))].sort();
  for (const name of names) {
    let id = (fnv1a(name) % MAX_SERVER_ID) + 1;
    while (taken.has(id)) id = (id % MAX_SERVER_ID) + 1;
    taken.add(id);
    ids.set(name, id);
  }
  return ids;
}

/** Renders infra/haproxy/haproxy.cfg.template (pure apart from reading the template and the fd limit). */
export function renderHaproxyConf(options: HaproxyConfOptions): string {
  if (options.upstreams.length === 0) throw new Error('haproxy: at least one upstream is needed');
  const maxConns = options.maxConns ?? 10_000;
  // HAProxy needs about 2 descriptors per connection plus some, and refuses to start without them.
  const fdCap = Math.floor((nofileHardLimit() - 1024) / 2);
  const globalMaxConn =
    options.globalMaxConn ?? Math.max(256, Math.min(maxConns * options.upstreams.length + 100, fdCap));
  const ids = haproxyServerIds(options.upstreams);
  const servers = [...new Set(options.upstreams.map(serverName))]
    .map((name) => {
      const u = options.upstreams.find((x) => serverName(x) === name)!;
      const addr = u.host.includes(':') ? `ipv6@${u.host}:${u.port}` : `${u.host}:${u.port}`;
      return `    server ${name} ${addr} id ${ids.get(name)}`;
    })
    .join('\n');
  const template = fs.readFileSync(HAPROXY_TEMPLATE, 'utf8');
  return renderTemplate(template, {
    USER: options.user ?? defaultUserLines(),
    PREFIX: options.prefix,
    STATS_SOCKET: options.statsSocket ?? path.join(options.prefix, 'haproxy.sock'),
    GLOBAL_MAXCONN: String(globalMaxConn),
    HARD_STOP_AFTER: `${options.hardStopAfterS ?? 30}s`,
    LOG_TARGET: options.logTarget ?? 'stdout format raw local0 info',
    CONNECT_TIMEOUT: `${options.connectTimeoutS ?? 3}s`,
    TIMEOUT: `${options.timeoutS ?? 75}s`,
    QUEUE_TIMEOUT: `${options.queueTimeoutS ?? 5}s`,
    CHECK_TIMEOUT: `${options.checkTimeoutMs ?? 1000}ms`,
    LISTEN: options.listen,
    CHECK_INTER: `${options.checkIntervalMs ?? 500}ms`,
    CHECK_FALL: String(options.checkFall ?? 3),
    CHECK_RISE: String(options.checkRise ?? 2),
    MAXCONN: String(maxConns),
    PROXY_PROTOCOL: options.proxyProtocol ? ' send-proxy-v2 check-send-proxy' : '',
    SERVERS: servers,
  });
}

/** Sends one command to a HAProxy CLI socket (stats or master) and resolves with the whole answer. */
export function haproxyCommand(socketPath: string, command: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to "${command}" on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    // Half-close after the command: HAProxy answers, then closes its side.
    socket.once('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/** Parses the master CLI's `show proc`. */
function parseShowProc(text: string): HaproxyProcs {
  const procs: HaproxyProcs = { master: 0, workers: [], oldWorkers: [], failedReloads: 0 };
  let section: 'workers' | 'oldWorkers' | 'other' = 'other';
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) {
      section = /^# workers/.test(line) ? 'workers' : /^# old workers/.test(line) ? 'oldWorkers' : 'other';
      continue;
    }
    const m = /^(\d+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    if (m[2] === 'master') {
      procs.master = pid;
      procs.failedReloads = Number(/\[failed: (\d+)\]/.exec(line)?.[1] ?? 0);
    } else if (m[2] === 'worker' && section !== 'other') {
      procs[section].push(pid);
    }
  }
  return procs;
}

/** Parses `show stat` (CSV with a `# pxname,svname,...` header) into the backend's servers. */
function parseShowStat(text: string): HaproxyServerState[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) throw new Error(`unexpected "show stat" answer: ${text.slice(0, 200)}`);
  const cols = header.slice(2).split(',');
  const col = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new Error(`"show stat" has no ${name} column`);
    return i;
  };
  const [px, sv, status, scur, check] = [
    col('pxname'),
    col('svname'),
    col('status'),
    col('scur'),
    col('check_status'),
  ];
  const out: HaproxyServerState[] = [];
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const f = line.split(',');
    if (f[px] !== BACKEND || f[sv] === 'BACKEND' || f[sv] === 'FRONTEND') continue;
    const name = f[sv]!;
    const sep = name.lastIndexOf(':');
    out.push({
      name,
      host: name.slice(0, sep),
      port: Number(name.slice(sep + 1)),
      status: f[status] ?? '',
      sessions: Number(f[scur] ?? 0),
      checkStatus: f[check] ?? '',
    });
  }
  return out;
}

/** Direct children of `pid` (Linux /proc; [] elsewhere): the HAProxy workers of a master. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
      for (const p of text.split(/\s+/).filter(Boolean)) out.push(Number(p));
    }
  } catch {
    // gone, or not Linux
  }
  return out;
}

/** Workers exit on their own once the master is gone; SIGKILL (by PID) any that are still there after `graceMs`. */
async function reapWorkers(pids: readonly number[], graceMs = 3000): Promise<void> {
  if (pids.length === 0) return;
  await waitFor(() => pids.every((p) => !pidAlive(p)), {
    timeoutMs: graceMs,
    intervalMs: 25,
    what: 'haproxy workers to exit',
  }).catch(() => {
    for (const p of pids) {
      try {
        // Only our worker: a recycled PID would not be haproxy.
        if (pidAlive(p) && fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'haproxy') {
          process.kill(p, 'SIGKILL');
        }
      } catch {
        // already gone
      }
    }
  });
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= offset) return '';
      const buf = Buffer.alloc(size - offset);
      fs.readSync(fd, buf, 0, buf.length, offset);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** Unix socket paths are limited to about 107 bytes: long prefixes get their sockets in a short temp dir. */
function socketDir(prefix: string): string {
  if (path.join(prefix, 'haproxy-master.sock').length < 100) return prefix;
  return fs.mkdtempSync(path.join(os.tmpdir(), 'herald-haproxy-'));
}

/**
 * Renders the HAProxy config into a prefix dir, checks it (`haproxy -c`) and runs
 * `haproxy -W -f <conf> -S <master socket>` in the foreground (master-worker, not daemonized), so we
 * own the master's PID. Waits until the listen port accepts connections.
 */
export async function startHaproxy(options: StartHaproxyOptions): Promise<HaproxyHandle> {
  const info = haproxyInfo();
  const host = options.listenHost ?? '127.0.0.1';
  const prefix = path.resolve(options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'herald-haproxy-')));
  const logDir = path.resolve(options.logDir ?? path.join(prefix, 'logs'));
  fs.mkdirSync(prefix, { recursive: true });
  fs.mkdirSync(logDir, { recursive: true });
  const sockets = socketDir(prefix);
  const port = options.listenPort ?? (await freePort(host));
  const confPath = path.join(prefix, 'haproxy.cfg');
  const logFile = path.join(logDir, options.logName ?? 'haproxy.log');
  const statsSocket = path.join(sockets, 'haproxy.sock');
  const masterSocket = path.join(sockets, 'haproxy-master.sock');
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const proxyProtocol = options.proxyProtocol ?? false;
  let upstreams: readonly Upstream[] = [...options.upstreams];

  const render = (ups: readonly Upstream[]) =>
    renderHaproxyConf({
      ...options,
      upstreams: ups,
      listen: `${host.includes(':') ? `ipv6@${host}` : host}:${port}`,
      prefix,
      statsSocket,
    });
  const check = () => {
    const res = spawnSync(info.bin, ['-c', '-q', '-f', confPath], { encoding: 'utf8', timeout: 10_000 });
    if (res.status !== 0)
      throw new Error(`haproxy config check failed (${confPath}):\n${res.stderr}${res.stdout}`);
  };

  fs.writeFileSync(confPath, render(upstreams));
  check();
  // Stale sockets from an earlier run would make the bind fail.
  for (const s of [statsSocket, masterSocket]) fs.rmSync(s, { force: true });
  const proc = await ManagedProcess.start({
    command: info.bin,
    // -W: master-worker; no -D, so it stays in the foreground. SIGUSR2 to the master reloads.
    args: ['-W', '-f', confPath, '-S', `${masterSocket},mode,600`],
    logFile,
    name: `haproxy:${port}`,
    cwd: prefix,
  });
  const bail = () => (proc.running ? undefined : `haproxy exited:\n${proc.logTail()}`);
  const showProc = async () => parseShowProc(await haproxyCommand(masterSocket, 'show proc'));
  try {
    await waitForTcp(host, port, readyTimeoutMs, bail);
    // The master CLI answers too (reload() and procs() use it).
    await waitFor(async () => (await showProc()).workers.length > 0, {
      timeoutMs: readyTimeoutMs,
      intervalMs: 50,
      what: `haproxy master CLI ${masterSocket}`,
      bail,
    });
  } catch (err) {
    const workers = childPids(proc.pid);
    await proc.stop('SIGKILL', 2000);
    await reapWorkers(workers);
    throw err;
  }

  // The master CLI is briefly unavailable while the master re-executes itself on reload: retry.
  const procs = async (): Promise<HaproxyProcs> => {
    let result: HaproxyProcs | undefined;
    await waitFor(
      async () => {
        result = await showProc();
        return true;
      },
      { timeoutMs: 3000, intervalMs: 50, what: `an answer on ${masterSocket}`, bail },
    );
    return result!;
  };

  return {
    kind: 'haproxy',
    host,
    port,
    prefix,
    confPath,
    logFile,
    statsSocket,
    masterSocket,
    proxyProtocol,
    pid: proc.pid,
    process: proc,
    get upstreams() {
      return upstreams;
    },
    url(urlHost = host, scheme: 'ws' | 'http' = 'ws') {
      return `${scheme}://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${port}`;
    },
    procs,
    async servers() {
      return parseShowStat(await haproxyCommand(statsSocket, 'show stat'));
    },
    command(cmd: string) {
      return haproxyCommand(statsSocket, cmd);
    },
    async stop(deadlineMs = 10_000) {
      // SIGTERM to the master: hard stop of master and workers (open sessions are cut).
      const workers = childPids(proc.pid);
      await proc.stop('SIGTERM', deadlineMs);
      await reapWorkers(workers);
    },
    async kill9() {
      const workers = childPids(proc.pid);
      await proc.kill9();
      // Workers notice the master is gone and exit; make sure of it.
      await reapWorkers(workers);
    },
    async reload(next: readonly Upstream[]) {
      if (!proc.running) throw new Error('haproxy is not running');
      const previous = fs.readFileSync(confPath, 'utf8');
      fs.writeFileSync(confPath, render(next));
      try {
        check();
      } catch (err) {
        fs.writeFileSync(confPath, previous);
        throw err;
      }
      const before = await procs();
      const logOffset = fileSize(logFile);
      proc.signal('SIGUSR2');
      // Done when a new worker serves and every old one stopped its frontend (it keeps its open
      // sessions until they close or hard-stop-after) or exited.
      let failed: string | undefined;
      await waitFor(
        async () => {
          const now = await procs();
          if (now.failedReloads > before.failedReloads) {
            failed = `haproxy reload failed:\n${readFrom(logFile, logOffset)}`;
            return false;
          }
          if (now.workers.length === 0 || now.workers.some((p) => before.workers.includes(p))) return false;
          const log = readFrom(logFile, logOffset);
          return before.workers.every(
            (pid) => !pidAlive(pid) || log.includes(`(${pid}) : Proxy ${FRONTEND} stopped`),
          );
        },
        {
          timeoutMs: readyTimeoutMs,
          intervalMs: 50,
          what: `haproxy to reload ${confPath}`,
          bail: () => failed ?? (proc.running ? undefined : `haproxy exited:\n${tailFile(logFile, 30)}`),
        },
      );
      upstreams = [...next];
    },
  };
}
