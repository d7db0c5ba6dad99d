import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Balancer, Upstream } from './balancer.js';
import { findExecutable } from './bins.js';
import { freePort } from './ports.js';
import { ManagedProcess, tailFile } from './proc.js';
import { waitFor, waitForTcp } from './wait.js';

export type { Upstream } from './balancer.js';

export interface NginxConfOptions {
  upstreams: readonly Upstream[];
  /** `host:port` (or just a port) nginx listens on. */
  listen: string;
  /** Absolute prefix dir; pid and lock files live here. */
  prefix: string;
  /** Default `<prefix>/logs/error.log`. */
  errorLog?: string;
  /** Default `<prefix>/logs/access.log`. */
  accessLog?: string;
  /** Default `notice` (records reloads; `warn` is enough in production). */
  errorLogLevel?: 'debug' | 'info' | 'notice' | 'warn' | 'error' | 'crit';
  /** Per upstream server, at the balancer (default 10000). */
  maxConns?: number;
  /** Idle timeout of a session, seconds; must exceed the heartbeat (default 75). */
  proxyTimeoutS?: number;
  /** Default 3. */
  connectTimeoutS?: number;
  /** Default 3 failures within `failTimeoutS` (default 10) mark a server down for `failTimeoutS`. */
  maxFails?: number;
  failTimeoutS?: number;
  /** Send the PROXY protocol header to the nodes (default false; only when they expect it). */
  proxyProtocol?: boolean;
  /** Default 2 (`auto` in production). */
  workerProcesses?: number | 'auto';
  /** Default: sized from maxConns x upstreams (two descriptors per proxied connection). */
  workerConnections?: number;
  /** Default 30. */
  workerShutdownTimeoutS?: number;
  /** `load_module ...;` line or '' (default: detected from the installed nginx). */
  modules?: string;
  /** `user ...;` line or '' (default: set only when running as root). */
  user?: string;
}

export interface StartNginxOptions
  extends Omit<
    NginxConfOptions,
    // errorLogLevel is fixed at notice: reload() watches the error log for the new workers.
    'listen' | 'prefix' | 'modules' | 'user' | 'errorLog' | 'accessLog' | 'errorLogLevel'
  > {
  /** Default: a free port. */
  listenPort?: number;
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Prefix dir (conf, pid, logs). Default: a new temp dir. */
  dir?: string;
  /** Where error.log and access.log go (default `<dir>/logs`). */
  logDir?: string;
  /** File names inside logDir (default error.log / access.log). */
  errorLogName?: string;
  accessLogName?: string;
  readyTimeoutMs?: number;
}

export interface NginxHandle extends Balancer {
  readonly kind: 'nginx';
  readonly errorLog: string;
  readonly accessLog: string;
  /** PID of the nginx master. */
  readonly pid: number;
  /** `proxy_protocol on`: nginx sends a PROXY v1 line (`PROXY TCP4 ...`) first on every session. */
  readonly proxyProtocol: boolean;
  /**
   * Rewrites the config with new upstreams, checks it (`nginx -t`), SIGHUPs the master and waits
   * until new workers run. Sessions already open stay on their old node until they close (or until
   * `worker_shutdown_timeout`).
   */
  reload(upstreams: readonly Upstream[]): Promise<void>;
}

export const NGINX_MISSING =
  'nginx with the stream module not found. Install it with: sudo apt-get install -y nginx libnginx-mod-stream (or set NGINX_BIN)';

export interface NginxInfo {
  bin: string;
  version: string;
  /** stream compiled into the binary (no load_module needed). */
  streamBuiltIn: boolean;
  /** The dynamic module file, when stream is not built in. */
  streamModule: string | undefined;
  /** The `load_module` line for the template ('' when built in). */
  modulesLine: string;
}

/** Finds nginx and its stream module; throws NGINX_MISSING when either is absent. */
export function nginxInfo(): NginxInfo {
  const bin = findExecutable('nginx', 'NGINX_BIN');
  if (!bin) throw new Error(NGINX_MISSING);
  const res = spawnSync(bin, ['-V'], { encoding: 'utf8', timeout: 10_000 });
  const text = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.status !== 0) throw new Error(`${NGINX_MISSING}\n(${bin} -V failed: ${text.trim()})`);
  const version = /nginx version: (\S+)/.exec(text)?.[1] ?? 'unknown';
  const streamBuiltIn = /--with-stream(?=\s|$)/.test(text);
  if (streamBuiltIn) return { bin, version, streamBuiltIn, streamModule: undefined, modulesLine: '' };
  const modulesDir = /--modules-path=(\S+)/.exec(text)?.[1] ?? '/usr/lib/nginx/modules';
  const candidates = [
    process.env.NGINX_STREAM_MODULE,
    path.join(modulesDir, 'ngx_stream_module.so'),
    '/usr/lib/nginx/modules/ngx_stream_module.so',
    '/usr/share/nginx/modules/ngx_stream_module.so',
  ].filter((f): f is string => Boolean(f));
  const streamModule = candidates.find((f) => fs.existsSync(f));
  if (!streamModule) throw new Error(NGINX_MISSING);
  return { bin, version, streamBuiltIn, streamModule, modulesLine: `load_module ${streamModule};` };
}

/** `{{NAME}}` substitution; throws when a placeholder has no value or a value is unused. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  const used = new Set<string>();
  const out = template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template placeholder {{${name}}} has no value`);
    used.add(name);
    return value;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) throw new Error(`template has no placeholder for: ${unused.join(', ')}`);
  return out;
}

/** infra/nginx/herald-stream.conf.template, found from this package (src/ or dist/). */
export const NGINX_TEMPLATE = fileURLToPath(
  new URL('../../nginx/herald-stream.conf.template', import.meta.url),
);

/** The `user` line: only when the master runs as root (workers drop privileges); '' otherwise. */
function defaultUserLine(): string {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return '';
  let group = 'nobody';
  try {
    if (/^nogroup:/m.test(fs.readFileSync('/etc/group', 'utf8'))) group = 'nogroup';
  } catch {
    // keep nobody
  }
  return `user nobody ${group};`;
}

/** Renders infra/nginx/herald-stream.conf.template (pure apart from reading the template and detecting nginx). */
export function renderNginxConf(options: NginxConfOptions): string {
  if (options.upstreams.length === 0) throw new Error('nginx: at least one upstream is needed');
  const maxConns = options.maxConns ?? 10_000;
  const maxFails = options.maxFails ?? 3;
  const failTimeoutS = options.failTimeoutS ?? 10;
  // Two connections per proxied session, spread over workers unevenly: size each worker for all.
  const workerConnections =
    options.workerConnections ??
    Math.min(Math.max(2 * maxConns * options.upstreams.length + 512, 1024), 65_536);
  const servers = options.upstreams
    .map(
      (u) =>
        `        server ${u.host}:${u.port} max_fails=${maxFails} fail_timeout=${failTimeoutS}s max_conns=${maxConns};`,
    )
    .join('\n');
  const template = fs.readFileSync(NGINX_TEMPLATE, 'utf8');
  return renderTemplate(template, {
    MODULES: options.modules ?? nginxInfo().modulesLine,
    USER: options.user ?? defaultUserLine(),
    WORKER_PROCESSES: String(options.workerProcesses ?? 2),
    RLIMIT_NOFILE: String(2 * workerConnections + 1024),
    WORKER_SHUTDOWN_TIMEOUT: `${options.workerShutdownTimeoutS ?? 30}s`,
    PREFIX: options.prefix,
    ERROR_LOG: options.errorLog ?? path.join(options.prefix, 'logs', 'error.log'),
    ERROR_LOG_LEVEL: options.errorLogLevel ?? 'notice',
    WORKER_CONNECTIONS: String(workerConnections),
    ACCESS_LOG: options.accessLog ?? path.join(options.prefix, 'logs', 'access.log'),
    SERVERS: servers,
    LISTEN: options.listen,
    PROXY_TIMEOUT: `${options.proxyTimeoutS ?? 75}s`,
    CONNECT_TIMEOUT: `${options.connectTimeoutS ?? 3}s`,
    PROXY_PROTOCOL: options.proxyProtocol ? 'on' : 'off',
  });
}

/**
 * Reads the (notice level) error log: how many times workers were started, and which worker PIDs
 * are still accepting (started, not yet shutting down or exited).
 */
function workerState(errorLog: string): { generations: number; active: Set<string> } {
  let text = '';
  try {
    text = fs.readFileSync(errorLog, 'utf8');
  } catch {
    // not written yet
  }
  let generations = 0;
  const active = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.includes('start worker processes')) generations++;
    let m = /start worker process (\d+)/.exec(line);
    if (m) active.add(m[1]!);
    m =
      /(\d+)#\d+: (?:gracefully shutting down|exiting|exit)$/.exec(line) ??
      /worker process (\d+) exited/.exec(line);
    if (m) active.delete(m[1]!);
  }
  return { generations, active };
}

/**
 * Renders the stream config into a prefix dir and runs `nginx -p <prefix> -c <conf> -g 'daemon off;'`
 * in the foreground, so we own the master's PID. Waits until the listen port accepts connections.
 */
export async function startNginx(options: StartNginxOptions): Promise<NginxHandle> {
  const info = nginxInfo();
  const host = options.listenHost ?? '127.0.0.1';
  const prefix = path.resolve(options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'herald-nginx-')));
  const logDir = path.resolve(options.logDir ?? path.join(prefix, 'logs'));
  fs.mkdirSync(prefix, { recursive: true });
  fs.mkdirSync(logDir, { recursive: true });
  const port = options.listenPort ?? (await freePort(host));
  const confPath = path.join(prefix, 'herald-stream.conf');
  const errorLog = path.join(logDir, options.errorLogName ?? 'error.log');
  const accessLog = path.join(logDir, options.accessLogName ?? 'access.log');
  const stdoutLog = path.join(logDir, 'nginx.stdout.log');
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  let upstreams: readonly Upstream[] = [...options.upstreams];

  const render = (ups: readonly Upstream[]) =>
    renderNginxConf({
      ...options,
      upstreams: ups,
      listen: `${host}:${port}`,
      prefix,
      errorLog,
      accessLog,
      modules: info.modulesLine,
      errorLogLevel: 'notice',
    });
  // -e: the startup error log, before the config is read (the compiled-in one may be unwritable).
  const baseArgs = ['-p', `${prefix}/`, '-c', confPath, '-e', errorLog];
  const check = () => {
    const res = spawnSync(info.bin, [...baseArgs, '-t', '-q'], { encoding: 'utf8', timeout: 10_000 });
    if (res.status !== 0)
      throw new Error(`nginx config check failed (${confPath}):\n${res.stderr}${res.stdout}`);
  };

  fs.writeFileSync(confPath, render(upstreams));
  check();
  const proc = await ManagedProcess.start({
    command: info.bin,
    args: [...baseArgs, '-g', 'daemon off;'],
    logFile: stdoutLog,
    name: `nginx:${port}`,
    cwd: prefix,
  });
  try {
    await waitForTcp(host, port, readyTimeoutMs, () =>
      proc.running ? undefined : `nginx exited:\n${proc.logTail()}\n${tailFile(errorLog, 20)}`,
    );
  } catch (err) {
    await proc.stop('SIGKILL', 2000);
    throw err;
  }

  return {
    kind: 'nginx',
    host,
    port,
    prefix,
    proxyProtocol: options.proxyProtocol ?? false,
    confPath,
    errorLog,
    accessLog,
    pid: proc.pid,
    process: proc,
    get upstreams() {
      return upstreams;
    },
    url(urlHost = host, scheme: 'ws' | 'http' = 'ws') {
      return `${scheme}://${urlHost}:${port}`;
    },
    async stop(deadlineMs = 10_000) {
      await proc.stop('SIGTERM', deadlineMs);
    },
    async kill9() {
      await proc.kill9();
    },
    async reload(next: readonly Upstream[]) {
      if (!proc.running) throw new Error('nginx is not running');
      const previous = fs.readFileSync(confPath, 'utf8');
      fs.writeFileSync(confPath, render(next));
      try {
        check();
      } catch (err) {
        fs.writeFileSync(confPath, previous);
        throw err;
      }
      const before = workerState(errorLog);
      proc.signal('SIGHUP');
      // Done when new workers run and the old ones stopped accepting (they keep open sessions).
      await waitFor(
        () => {
          const now = workerState(errorLog);
          return (
            now.generations > before.generations && ![...before.active].some((pid) => now.active.has(pid))
          );
        },
        {
          timeoutMs: readyTimeoutMs,
          intervalMs: 50,
          what: `nginx to reload ${confPath}`,
          bail: () => (proc.running ? undefined : 'nginx exited'),
        },
      );
      upstreams = [...next];
    },
  };
}
