import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './paths.js';
import { freePort } from './ports.js';
import { ManagedProcess } from './proc.js';
import { PROXY_V2_LOCAL, rawHttpGet, waitFor, waitForHttp } from './wait.js';

export type AppKind = 'api' | 'worker' | 'node';

export interface StartAppOptions {
  app: AppKind;
  /** Display and log name (default: `app`, e.g. `node-1` for nodes). */
  name?: string;
  redisUrl: string;
  /** HERALD_PORT. Default: a free port. */
  port?: number;
  /** HERALD_HOST, the bind address (default 127.0.0.1). */
  host?: string;
  /** `<logDir>/<name>.log` gets stdout and stderr (appended across restarts). */
  logDir: string;
  /** HERALD_LOG_LEVEL (default: env.HERALD_LOG_LEVEL, else 'info'). */
  logLevel?: string;
  /** Extra environment, passed through (cannot override REDIS_URL, HERALD_HOST, HERALD_PORT or the app's own vars). */
  env?: Record<string, string>;
  /** Default 20 s. */
  readyTimeoutMs?: number;
  /** Script to run instead of `apps/<app>/dist/main.js` (tests of the launcher itself). */
  script?: string;
}

export interface AppHandle {
  readonly name: string;
  readonly app: AppKind;
  readonly host: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` (the bind host, or 127.0.0.1 when bound to all interfaces). */
  readonly url: string;
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  readonly logFile: string;
  /** The environment the app was started with (on top of process.env). */
  readonly env: Readonly<Record<string, string>>;
  readonly process: ManagedProcess;
  /** SIGTERM (nodes drain), SIGKILL after `deadlineMs` (default 10 s). */
  stop(signal?: NodeJS.Signals, deadlineMs?: number): Promise<void>;
  /** SIGKILL: a crash. */
  kill9(): Promise<void>;
  /** Stops it (if running) and starts it again with the same env and port; waits for /readyz. */
  restart(): Promise<void>;
}

export interface ApiOptions extends Omit<StartAppOptions, 'app'> {
  /** HERALD_API_KEYS. */
  apiKeys: readonly string[];
  /** HERALD_TOKEN_SECRET: lets the console mint a token for its demo device. */
  tokenSecret?: string;
}

export interface WorkerOptions extends Omit<StartAppOptions, 'app'> {}

export interface NodeOptions extends Omit<StartAppOptions, 'app'> {
  /** HERALD_NODE_ID, e.g. node-1 (also the default name). */
  nodeId: string;
  /** HERALD_TOKEN_SECRET. */
  tokenSecret: string;
}

/** `<repo>/apps/<app>/dist/main.js`. */
export function appScript(app: AppKind): string {
  return path.join(repoRoot(), 'apps', app, 'dist', 'main.js');
}

/**
 * Starts `node <script>` with the Herald env and waits until GET /readyz on HERALD_PORT answers 200.
 * `appEnv` holds the app's own variables (API keys, node id, token secret).
 */
export async function startApp(
  options: StartAppOptions,
  appEnv: Record<string, string> = {},
): Promise<AppHandle> {
  const script = options.script ?? appScript(options.app);
  if (!fs.existsSync(script)) {
    throw new Error(`${script} not found: build first (npm run build at the repo root)`);
  }
  const name = options.name ?? options.app;
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host === '0.0.0.0' ? '127.0.0.1' : host));
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `http://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${port}`;
  const logFile = path.join(options.logDir, `${name}.log`);
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const env: Record<string, string> = {
    HERALD_LOG_LEVEL: options.logLevel ?? options.env?.HERALD_LOG_LEVEL ?? 'info',
    ...options.env,
    ...appEnv,
    REDIS_URL: options.redisUrl,
    HERALD_HOST: host,
    HERALD_PORT: String(port),
  };

  // A node with HERALD_PROXY_PROTOCOL=true drops connections that do not start with a PROXY header,
  // so the readiness probe sends one (LOCAL, as a balancer's health check does).
  const proxied = options.app === 'node' && env.HERALD_PROXY_PROTOCOL === 'true';
  const waitReady = (bail: () => string | undefined) =>
    proxied
      ? waitFor(
          async () => {
            const res = await rawHttpGet(urlHost, port, '/readyz', {
              prefix: PROXY_V2_LOCAL,
              timeoutMs: Math.min(2000, readyTimeoutMs),
            });
            if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
            return true;
          },
          {
            timeoutMs: readyTimeoutMs,
            what: `HTTP 200 from ${url}/readyz (with a PROXY v2 LOCAL header)`,
            bail,
          },
        )
      : waitForHttp(`${url}/readyz`, readyTimeoutMs, bail);

  const launch = async (): Promise<ManagedProcess> => {
    const proc = await ManagedProcess.start({
      command: process.execPath,
      args: [script],
      env,
      logFile,
      name,
      cwd: repoRoot(),
    });
    try {
      await waitReady(() =>
        proc.running
          ? undefined
          : `${name} exited with code ${proc.exitCode}; log ${logFile}:\n${proc.logTail()}`,
      );
    } catch (err) {
      await proc.stop('SIGKILL', 2000);
      throw new Error(`${name} did not become ready: ${(err as Error).message}`);
    }
    return proc;
  };

  let current = await launch();
  return {
    name,
    app: options.app,
    host,
    port,
    url,
    logFile,
    env,
    get pid() {
      return current.pid;
    },
    get process() {
      return current;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', deadlineMs = 10_000) {
      await current.stop(signal, deadlineMs);
    },
    async kill9() {
      await current.kill9();
    },
    async restart() {
      await current.stop('SIGTERM');
      current = await launch();
    },
  };
}

/** apps/api: the publish API. */
export function startApi({ apiKeys, tokenSecret, ...options }: ApiOptions): Promise<AppHandle> {
  return startApp(
    { ...options, app: 'api' },
    { HERALD_API_KEYS: apiKeys.join(','), ...(tokenSecret ? { HERALD_TOKEN_SECRET: tokenSecret } : {}) },
  );
}

/** apps/worker: fan-out and delayed sends (serves /healthz and /readyz on HERALD_PORT). */
export function startWorker(options: WorkerOptions): Promise<AppHandle> {
  return startApp({ ...options, app: 'worker' });
}

/** apps/node: a push node. */
export function startNode({ nodeId, tokenSecret, ...options }: NodeOptions): Promise<AppHandle> {
  return startApp(
    { name: nodeId, ...options, app: 'node' },
    { HERALD_NODE_ID: nodeId, HERALD_TOKEN_SECRET: tokenSecret },
  );
}
