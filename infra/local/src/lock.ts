import fs from 'node:fs';
import path from 'node:path';

/**
 * `<repo>/.herald/launcher.lock`: which `npm start` owns this checkout's `.herald/` (Redis AOF
 * files, nginx/HAProxy config, logs). A second launcher on the same directory would start a second
 * Redis on the same AOF files and rewrite the running balancer's config, so it refuses instead.
 */
export interface LockInfo {
  /** PID of the launcher (`node .../infra/local/dist/cli.js`). */
  pid: number;
  /** process.argv[1] of the launcher: how a live PID is told apart from a reused one. */
  script: string;
  startedAt: string;
  state: 'starting' | 'running';
  apiUrl?: string;
  wsUrl?: string;
  consoleUrl?: string;
  /** Processes the launcher started (name -> PID), once they run. */
  children?: Record<string, number>;
  /** Linux boot id: after a reboot, PIDs in the lock name other processes, so the lock is stale. */
  bootId?: string;
}

function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

export type AcquireResult =
  | { ok: true; lock: LaunchLock; tookOver?: LockInfo }
  /** Another launcher holds it, or a dead one left processes running (`orphans`). */
  | { ok: false; holder: LockInfo; orphans: Record<string, number> };

export function lockFile(home: string): string {
  return path.join(home, 'launcher.lock');
}

/** 'alive', 'dead', or 'alive' for a PID this user may not signal (EPERM: it exists). */
function pidState(pid: number): 'alive' | 'dead' {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? 'alive' : 'dead';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' ? 'dead' : 'alive';
  } catch {
    return 'alive'; // no /proc: trust kill(0)
  }
}

/** The PID's command line, or undefined where there is no /proc (then only liveness is known). */
function cmdline(pid: number): string[] | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

function realpath(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}

/**
 * Does the PID run `script`? Its arguments are resolved against its working directory, so
 * `node infra/local/dist/cli.js` run from the repo root (what `npm start` does) counts.
 */
function runsScript(pid: number, script: string): boolean | undefined {
  const args = cmdline(pid);
  if (args === undefined) return undefined;
  let cwd: string;
  try {
    cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    // another user's process: compare the arguments as they are
    return args.some((a) => a === script || script.endsWith(`/${a}`));
  }
  const target = realpath(script);
  return args.some((a) => realpath(path.resolve(cwd, a)) === target);
}

/** Is `info.pid` still the launcher that wrote the lock (alive, and running the same script)? */
export function holderAlive(info: LockInfo): boolean {
  if (info.bootId !== undefined && info.bootId !== bootId()) return false;
  if (pidState(info.pid) === 'dead') return false;
  return runsScript(info.pid, info.script) ?? true;
}

/** Children of a dead launcher that still run (process name still in their command line). */
function orphansOf(info: LockInfo): Record<string, number> {
  const left: Record<string, number> = {};
  if (info.bootId !== undefined && info.bootId !== bootId()) return left;
  for (const [name, pid] of Object.entries(info.children ?? {})) {
    if (pidState(pid) === 'dead') continue;
    const args = cmdline(pid);
    // A reused PID runs something else; the launcher's children are redis-server, nginx, haproxy, node.
    if (args === undefined || /redis-server|nginx|haproxy|node/.test(args.join(' '))) left[name] = pid;
  }
  return left;
}

function readLock(file: string): { info: LockInfo | undefined; raw: string } | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const info = JSON.parse(raw) as LockInfo;
    if (Number.isInteger(info.pid) && info.pid > 0 && typeof info.script === 'string') return { info, raw };
  } catch {
    // torn or foreign content: treated as stale (writes are atomic, so only a foreign file is torn)
  }
  return { info: undefined, raw };
}

/** Writes `content` to `file` atomically: a temp file in the same directory, then rename. */
function writeAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** The lock this process holds: update() rewrites it atomically, release() removes it if still ours. */
export class LaunchLock {
  constructor(
    readonly file: string,
    private info: LockInfo,
  ) {}

  get current(): LockInfo {
    return this.info;
  }

  update(patch: Partial<Omit<LockInfo, 'pid' | 'script'>>): void {
    this.info = { ...this.info, ...patch };
    writeAtomic(this.file, `${JSON.stringify(this.info, null, 2)}\n`);
  }

  /** Removes the lock file when it is still this process's (synchronous: safe in an 'exit' handler). */
  release(): void {
    try {
      const held = readLock(this.file)?.info;
      if (held?.pid === this.info.pid) fs.unlinkSync(this.file);
    } catch {
      // already gone
    }
  }
}

/**
 * Takes `<home>/launcher.lock` for this process. The file is created with its full content in one
 * step (written to a temp file, then hard-linked into place, which fails when the lock exists).
 * An existing lock is stale when its PID is dead or runs something other than the launcher script
 * it names; a stale lock is taken over unless the dead launcher's children still run (a Redis on
 * the same AOF files): then `orphans` lists them. Bounded: three attempts against concurrent takers.
 */
export function acquireLaunchLock(home: string, script = process.argv[1] ?? ''): AcquireResult {
  fs.mkdirSync(home, { recursive: true });
  const file = lockFile(home);
  const info: LockInfo = {
    pid: process.pid,
    script: path.resolve(script),
    startedAt: new Date().toISOString(),
    state: 'starting',
    ...(bootId() ? { bootId: bootId() } : {}),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  let tookOver: LockInfo | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    fs.writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o644 });
    try {
      fs.linkSync(tmp, file);
      return { ok: true, lock: new LaunchLock(file, info), ...(tookOver ? { tookOver } : {}) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    const existing = readLock(file);
    if (!existing) continue; // released meanwhile: try again
    if (existing.info && holderAlive(existing.info)) return { ok: false, holder: existing.info, orphans: {} };
    if (existing.info) {
      const orphans = orphansOf(existing.info);
      if (Object.keys(orphans).length > 0) return { ok: false, holder: existing.info, orphans };
    }
    // Stale. Remove it only if it is still the same stale file (another launcher may have taken it).
    if (readLock(file)?.raw !== existing.raw) continue;
    fs.rmSync(file, { force: true });
    tookOver = existing.info;
  }
  const holder = readLock(file)?.info;
  if (holder) return { ok: false, holder, orphans: {} };
  throw new Error(`could not take ${file}: other launchers kept changing it`);
}

/** The message for a refused start: who runs, where, and how to stop it. */
export function refusalMessage(home: string, holder: LockInfo, orphans: Record<string, number>): string {
  const lines: string[] = [];
  const orphanList = Object.entries(orphans);
  if (orphanList.length > 0) {
    lines.push(
      `A previous Herald launcher (PID ${holder.pid}) of this checkout died without stopping what it started;`,
      `still running on ${home}: ${orphanList.map(([n, p]) => `${n} (PID ${p})`).join(', ')}.`,
      `Stop them, then start again: kill ${orphanList.map(([, p]) => p).join(' ')}`,
    );
    return lines.join('\n');
  }
  lines.push(
    `Herald is already running from this checkout (launcher PID ${holder.pid}, ${holder.state} since ${holder.startedAt}; ${path.join(home, 'launcher.lock')}).`,
  );
  if (holder.apiUrl) lines.push(`  Publish (HTTP):   POST ${holder.apiUrl}/v1/notifications`);
  if (holder.wsUrl) lines.push(`  WebSocket:        ${holder.wsUrl}`);
  if (holder.consoleUrl) lines.push(`  Console:          ${holder.consoleUrl}`);
  lines.push(
    `Use that one, or stop it first (Ctrl-C in its terminal, or: kill ${holder.pid}). A second stack here would share its Redis files and balancer config.`,
  );
  return lines.join('\n');
}
