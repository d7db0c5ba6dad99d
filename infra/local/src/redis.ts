import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findExecutable } from './bins.js';
import { freePort } from './ports.js';
import { ManagedProcess } from './proc.js';
import { waitFor } from './wait.js';

export interface StartRedisOptions {
  /** Data dir (AOF lives here). Default: a new temp dir. */
  dir?: string;
  /** Default: a free port. */
  port?: number;
  /** AOF persistence (default true): `appendonly yes`, `appendfsync everysec`. */
  appendonly?: boolean;
  /** Default: `<dir>/redis.log`. */
  logFile?: string;
  /** Readiness timeout for each start (default 20 s; AOF replay can take a while). */
  readyTimeoutMs?: number;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '256mb']. */
  extraArgs?: string[];
}

export interface RedisHandle {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  /** PID of the current redis-server (changes on restart). */
  readonly pid: number;
  /** The current process, e.g. to watch `process.exited`. */
  readonly process: ManagedProcess;
  /** SIGTERM (redis flushes the AOF and exits), SIGKILL after `deadlineMs`. */
  stop(deadlineMs?: number): Promise<void>;
  /** Stops it and starts it again on the same port and dir; the AOF is replayed. */
  restart(): Promise<void>;
  /** SIGKILL: a crash (up to ~1 s of writes may be lost with `appendfsync everysec`). */
  kill9(): Promise<void>;
}

export const REDIS_MISSING =
  'redis-server not found. Install it with: sudo apt-get install -y redis-server (or set REDIS_SERVER_BIN)';

/** Path of redis-server, or throws with the install command. */
export function redisServerBin(): string {
  const bin = findExecutable('redis-server', 'REDIS_SERVER_BIN');
  if (!bin) throw new Error(REDIS_MISSING);
  return bin;
}

/**
 * One `PING` over a raw TCP socket. Resolves true on `+PONG`; false on `-LOADING` (AOF replay in
 * progress), refusal or timeout; rejects on any other error answer (e.g. NOAUTH).
 */
export function redisPing(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buffer = '';
    const finish = (result: boolean | Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\r\n');
      if (end < 0) return;
      const line = buffer.slice(0, end);
      if (line === '+PONG') finish(true);
      else if (line.startsWith('-LOADING')) finish(false);
      else finish(new Error(`redis answered ${JSON.stringify(line)}`));
    });
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/** Starts a non-daemonized redis-server on 127.0.0.1 and waits until it answers PING. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisHandle> {
  const bin = redisServerBin();
  const host = '127.0.0.1';
  // A temp dir made here is removed on stop() (set HERALD_KEEP_TMP=1 to keep it for its log).
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'herald-redis-'));
  fs.mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort(host));
  const logFile = options.logFile ?? path.join(dir, 'redis.log');
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const appendonly = options.appendonly ?? true;
  const args = [
    '--port',
    String(port),
    '--bind',
    host,
    '--dir',
    dir,
    '--daemonize',
    'no',
    '--appendonly',
    appendonly ? 'yes' : 'no',
    '--appendfsync',
    'everysec',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--protected-mode',
    'yes',
    // stdout, which ManagedProcess appends to the log file
    '--logfile',
    '',
    ...(options.extraArgs ?? []),
  ];

  const launch = async (): Promise<ManagedProcess> => {
    const proc = await ManagedProcess.start({ command: bin, args, logFile, name: `redis:${port}`, cwd: dir });
    try {
      await waitFor(() => redisPing(host, port), {
        timeoutMs: readyTimeoutMs,
        what: `redis-server on ${host}:${port} to answer PING`,
        bail: () => (proc.running ? undefined : `redis-server exited:\n${proc.logTail()}`),
      });
    } catch (err) {
      await proc.stop('SIGKILL', 2000);
      throw err;
    }
    return proc;
  };

  let current = await launch();
  return {
    url: `redis://${host}:${port}`,
    host,
    port,
    dir,
    logFile,
    get pid() {
      return current.pid;
    },
    get process() {
      return current;
    },
    async stop(deadlineMs = 10_000) {
      await current.stop('SIGTERM', deadlineMs);
      if (ownDir && !process.env.HERALD_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await current.stop('SIGTERM');
      fs.mkdirSync(dir, { recursive: true });
      current = await launch();
    },
    async kill9() {
      await current.kill9();
    },
  };
}
