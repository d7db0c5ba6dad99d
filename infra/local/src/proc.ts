import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface ManagedProcessOptions {
  /** Executable (looked up on PATH) and its arguments; no shell is involved. */
  command: string;
  args?: readonly string[];
  /** Environment of the child. Merged over `process.env` unless `inheritEnv` is false. */
  env?: Record<string, string | undefined>;
  inheritEnv?: boolean;
  cwd?: string;
  /** stdout and stderr are appended to this file (created with its directory). */
  logFile: string;
  /** Short name for messages (default: the command's base name). */
  name?: string;
}

/** Every ManagedProcess whose child has not exited yet. */
const live = new Set<ManagedProcess>();
let hooksInstalled = false;

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** SIGKILLs every live ManagedProcess child, synchronously (usable from an 'exit' handler). */
export function killAllManagedProcesses(): void {
  for (const proc of live) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The ManagedProcesses still running. */
export function liveProcesses(): ManagedProcess[] {
  return [...live];
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Children are spawned in their own process group (so a terminal Ctrl-C reaches only the parent,
  // which then stops them in order); hence the parent must take them down when it goes.
  process.on('exit', killAllManagedProcesses);
  for (const sig of FORWARDED_SIGNALS) {
    const onSignal = () => {
      // Someone else (e.g. the CLI) handles this signal and will stop things in order.
      if (process.listenerCount(sig) > 1) return;
      killAllManagedProcesses();
      // Behave as if we had not listened: die from the same signal.
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * A child process we own by PID: output appended to a log file, stopped with a signal and a deadline
 * (then SIGKILL), and killed when the parent process exits, so tests never leave orphans.
 */
export class ManagedProcess {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  /** Resolves with the exit code once the child has exited (null when it died from a signal or never started). */
  readonly exited: Promise<number | null>;
  /** Resolves once the child is running; rejects when it could not be spawned (e.g. ENOENT). */
  readonly spawned: Promise<void>;

  private readonly child: ChildProcess;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stopping: Promise<number | null> | undefined;

  /** Spawns the child and waits until it is running (rejects when it cannot be spawned). */
  static async start(options: ManagedProcessOptions): Promise<ManagedProcess> {
    const proc = new ManagedProcess(options);
    await proc.spawned;
    return proc;
  }

  constructor(options: ManagedProcessOptions) {
    this.command = options.command;
    this.args = options.args ?? [];
    this.name = options.name ?? path.basename(options.command);
    this.logFile = options.logFile;
    installHooks();

    fs.mkdirSync(path.dirname(this.logFile), { recursive: true });
    const fd = fs.openSync(this.logFile, 'a');
    let resolveExited!: (code: number | null) => void;
    this.exited = new Promise((resolve) => {
      resolveExited = resolve;
    });
    try {
      fs.writeSync(fd, `--- ${new Date().toISOString()} start ${this.command} ${this.args.join(' ')}\n`);
      const env = options.inheritEnv === false ? { ...options.env } : { ...process.env, ...options.env };
      this.child = spawn(this.command, this.args, {
        cwd: options.cwd,
        env,
        // The child writes straight into the file: no pipes to drain, output survives a parent crash.
        stdio: ['ignore', fd, fd],
        // Own process group: a terminal Ctrl-C goes to the parent only, which stops children in order.
        detached: true,
      });
    } finally {
      fs.closeSync(fd);
    }
    if (this.child.pid !== undefined) live.add(this);

    this.spawned = new Promise<void>((resolve, reject) => {
      this.child.once('spawn', () => resolve());
      this.child.once('error', (err) => {
        if (this.child.pid === undefined) {
          this.exitInfo = { code: null, signal: null };
          resolveExited(null);
          reject(new Error(`${this.name}: cannot start ${this.command}: ${err.message}`));
        }
      });
    });
    // Avoid an unhandled rejection when the caller only uses `exited`.
    this.spawned.catch(() => {});

    this.child.once('exit', (code, signal) => {
      live.delete(this);
      this.exitInfo = { code, signal };
      try {
        fs.appendFileSync(
          this.logFile,
          `--- ${new Date().toISOString()} exit code=${code} signal=${signal}\n`,
        );
      } catch {
        // log dir removed: nothing to record
      }
      resolveExited(code);
    });
  }

  /** The child's PID (0 when it could not be spawned). */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** True until the child has exited. */
  get running(): boolean {
    return this.exitInfo === undefined;
  }

  get exitCode(): number | null {
    return this.exitInfo?.code ?? null;
  }

  /** The signal that ended the child, if any. */
  get signalCode(): NodeJS.Signals | null {
    return this.exitInfo?.signal ?? null;
  }

  /** Sends `signal` to the child's PID; false when it has already exited. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.running || this.pid === 0) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Sends `signal` to the child and waits for it to exit; SIGKILLs it at `deadlineMs`.
   * Resolves with the exit code (null when it died from a signal). Safe to call again.
   */
  stop(signal: NodeJS.Signals = 'SIGTERM', deadlineMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exited;
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      this.signal(signal);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      const outcome = await Promise.race([this.exited, deadline]);
      clearTimeout(timer);
      if (outcome === 'deadline') {
        try {
          fs.appendFileSync(
            this.logFile,
            `--- ${new Date().toISOString()} no exit after ${deadlineMs} ms, SIGKILL\n`,
          );
        } catch {
          // ignore
        }
        this.signal('SIGKILL');
      }
      return this.exited;
    })().finally(() => {
      this.stopping = undefined;
    });
    return this.stopping;
  }

  /** SIGKILLs the child (a crash, as far as it is concerned) and waits for it to be gone. */
  kill9(): Promise<number | null> {
    this.signal('SIGKILL');
    return this.exited;
  }

  /** The last `lines` lines of the log file, for error messages. */
  logTail(lines = 30): string {
    return tailFile(this.logFile, lines);
  }
}

/** The last `lines` lines of a text file ('' when it does not exist). */
export function tailFile(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
      .trimEnd();
  } catch {
    return '';
  }
}

/** True while a process with this PID exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return process.platform !== 'linux';
  }
}
