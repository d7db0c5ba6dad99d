#!/usr/bin/env node
// `npm start`: the whole Herald stack on this machine (Redis, worker, API, 3 push nodes, and nginx
// or, with `--balancer haproxy` / HERALD_BALANCER=haproxy, HAProxy in front of the nodes).
// State lives in <repo>/.herald (redis AOF, logs, secrets.json). Ctrl-C stops everything.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type AppHandle, appScript } from './apps.js';
import type { BalancerKind } from './balancer.js';
import { findExecutable, installCommand } from './bins.js';
import { ENSURE_DEPS, ensureSystemDeps, type SystemDep } from './deps.js';
import { haproxyInfo } from './haproxy.js';
import { acquireLaunchLock, refusalMessage } from './lock.js';
import { nginxInfo } from './nginx.js';
import { heraldHome, repoRoot } from './paths.js';
import { preferredPort } from './ports.js';
import { killAllManagedProcesses } from './proc.js';
import { loadOrCreateSecrets } from './secrets.js';
import { type Stack, startStack } from './stack.js';

const NODES = 3;
const DEFAULT_PORTS = { api: 8080, balancer: 8000, worker: 8090, firstNode: 8091, redis: 6379 };
const BALANCERS: readonly BalancerKind[] = ['nginx', 'haproxy'];
/** Exit code when another launcher already runs from this checkout. */
const ALREADY_RUNNING = 3;

const USAGE = `usage: npm start [-- --balancer nginx|haproxy]

  --balancer <kind>   L4 balancer in front of the push nodes: nginx (default) or haproxy
                      (or set HERALD_BALANCER)
  -h, --help          this text

Environment: REDIS_URL (use this Redis instead of starting one), HERALD_TOKEN_SECRET,
HERALD_APPS_FILE (several apps, e.g. infra/local/apps.example.json; default: one app),
HERALD_LOG_LEVEL, HERALD_BALANCER; binaries: REDIS_SERVER_BIN, NGINX_BIN, NGINX_STREAM_MODULE,
HAPROXY_BIN.`;

interface Missing {
  what: string;
  dep: SystemDep;
  packages: string[];
  /** Why it was rejected (e.g. a version too old), when not simply absent. */
  detail?: string;
}

function missingBinaries(needRedis: boolean, balancer: BalancerKind): Missing[] {
  const missing: Missing[] = [];
  if (needRedis && !findExecutable('redis-server', 'REDIS_SERVER_BIN')) {
    missing.push({ what: 'redis-server', dep: 'redis', packages: ['redis-server'] });
  }
  if (balancer === 'haproxy') {
    try {
      haproxyInfo();
    } catch (err) {
      const detail = (err as Error).message;
      missing.push({
        what: 'haproxy',
        dep: 'haproxy',
        packages: ['haproxy'],
        detail: /too old/.test(detail) ? detail : undefined,
      });
    }
  } else {
    try {
      nginxInfo();
    } catch {
      missing.push({
        what: 'nginx with the stream module',
        dep: 'nginx',
        packages: ['nginx', 'libnginx-mod-stream'],
      });
    }
  }
  return missing;
}

/** The balancer from `--balancer` or HERALD_BALANCER (default nginx); a string is a usage error. */
function parseCli(argv: string[]): { balancer: BalancerKind; help: boolean } | string {
  let values: { balancer?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { balancer: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    return (err as Error).message;
  }
  const balancer = (values.balancer ?? process.env.HERALD_BALANCER ?? '').trim().toLowerCase() || 'nginx';
  if (!BALANCERS.includes(balancer as BalancerKind)) {
    return `unknown balancer "${balancer}" (${values.balancer ? '--balancer' : 'HERALD_BALANCER'}): use nginx or haproxy`;
  }
  return { balancer: balancer as BalancerKind, help: values.help ?? false };
}

function printBanner(stack: Stack, demoKey: string, ownRedis: boolean): void {
  const home = heraldHome();
  const publish = `${stack.apiUrl}/v1/notifications`;
  // With HERALD_APPS_FILE the apps, their keys and token secrets are the file's (docs/tenancy.md);
  // the generated demo key and secret are not used.
  const appsFile = process.env.HERALD_APPS_FILE;
  const apiKey = appsFile ? '$KEY' : demoKey;
  const lines = [
    '',
    'Herald is running.',
    '',
    `  Publish (HTTP):   POST ${publish}`,
    `  WebSocket:        ${stack.wsUrl}   (${stack.balancer.kind} :${stack.balancer.port} -> ${stack.nodes.map((n) => `${n.name} :${n.port}`).join(', ')})`,
    `  Console:          ${stack.apiUrl}/console   (paste the demo API key)`,
    appsFile
      ? `  Apps:             ${appsFile}   (keys and token secrets from the file: KEY=<an app's API key>)`
      : `  Demo API key:     ${apiKey}`,
    `  Redis:            ${stack.redisUrl}${ownRedis ? `   (data ${path.join(home, 'redis')}, AOF on)` : ''}`,
    `  Worker:           ${stack.worker.url}`,
    `  Logs:             ${path.join(home, 'logs')}`,
    '',
    'Publish a notification:',
    '',
    `  curl -sS -X POST ${publish} \\`,
    `    -H 'Authorization: Bearer ${apiKey}' \\`,
    `    -H 'Content-Type: application/json' \\`,
    `    -d '{"to":{"devices":["dev-1"]},"data":{"title":"Hello from Herald"},"ttl":3600}'`,
    '',
    'Mint a device token (then send {"type":"hello","token":"<token>"} as the first WebSocket frame):',
    '',
    appsFile
      ? `  npx herald token --app <app> --secret <its token secret> --device dev-1 --user user-1`
      : `  npx herald token --device dev-1 --user user-1 [--topics 'news.*']`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ];
  console.log(lines.join('\n'));
}

function watchForCrashes(apps: AppHandle[], isStopping: () => boolean): void {
  for (const app of apps) {
    const proc = app.process;
    void proc.exited.then((code) => {
      if (isStopping() || app.process !== proc) return;
      const how = proc.signalCode ? `signal ${proc.signalCode}` : `code ${code}`;
      console.error(`\n${app.name} exited unexpectedly (${how}); see ${app.logFile}`);
    });
  }
}

async function main(): Promise<number> {
  const cli = parseCli(process.argv.slice(2));
  if (typeof cli === 'string') {
    console.error(`${cli}\n${USAGE}`);
    return 1;
  }
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  // One launcher per checkout: a second one would share .herald/redis and the balancer config.
  const home = heraldHome();
  const acquired = acquireLaunchLock(home);
  if (!acquired.ok) {
    console.error(refusalMessage(home, acquired.holder, acquired.orphans));
    return ALREADY_RUNNING;
  }
  const lock = acquired.lock;
  process.on('exit', () => lock.release());
  if (acquired.tookOver) {
    console.log(`(took over a stale ${lock.file} of launcher PID ${acquired.tookOver.pid}, which is gone)`);
  }

  const redisUrl = process.env.REDIS_URL || undefined;
  let missing = missingBinaries(!redisUrl, cli.balancer);
  if (missing.length > 0) {
    // Installs them (root or passwordless sudo, saying what it runs), else prints the command.
    console.log(
      `Missing: ${missing.map((m) => m.what).join(', ')}; running ${path.relative(process.cwd(), ENSURE_DEPS)}`,
    );
    if (ensureSystemDeps(missing.map((m) => m.dep))) missing = missingBinaries(!redisUrl, cli.balancer);
  }
  if (missing.length > 0) {
    // ensure-deps.sh has said why (and printed the install command when it could not run it).
    for (const m of missing) if (m.detail) console.error(m.detail);
    console.error(
      `Herald cannot start without: ${missing.map((m) => m.what).join(', ')} (${installCommand(missing.flatMap((m) => m.packages))}).`,
    );
    return 1;
  }
  const unbuilt = (['api', 'worker', 'node'] as const).map(appScript).filter((f) => !fs.existsSync(f));
  if (unbuilt.length > 0) {
    console.error(
      `Not built: ${unbuilt.map((f) => path.relative(repoRoot(), f)).join(', ')}. Run: npm run build`,
    );
    return 1;
  }

  const secrets = loadOrCreateSecrets();
  const tokenSecret = process.env.HERALD_TOKEN_SECRET || secrets.tokenSecret;
  const host = '127.0.0.1';
  const nodePorts: number[] = [];
  for (let i = 0; i < NODES; i++) nodePorts.push(await preferredPort(DEFAULT_PORTS.firstNode + i, host));

  let stopping = false;
  let starting: Promise<Stack> | undefined;
  let shutdown: Promise<number> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (shutdown) {
      console.error(`\n${signal} again: killing everything now`);
      killAllManagedProcesses();
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: stopping Herald (Ctrl-C again to force)...`);
    shutdown = (async () => {
      try {
        // While starting, wait for it to settle (a failed start cleans up after itself).
        const stack = await starting?.catch(() => undefined);
        await stack?.stop();
        console.log('Stopped.');
        return 0;
      } catch (err) {
        console.error(`error while stopping: ${(err as Error).message}`);
        return 1;
      }
    })();
    void shutdown.then((code) => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const ports = {
    api: await preferredPort(DEFAULT_PORTS.api, host),
    balancer: await preferredPort(DEFAULT_PORTS.balancer, host),
    worker: await preferredPort(DEFAULT_PORTS.worker, host),
  };
  lock.update({
    apiUrl: `http://${host}:${ports.api}`,
    wsUrl: `ws://${host}:${ports.balancer}/v1/ws`,
    consoleUrl: `http://${host}:${ports.api}/console`,
  });

  console.log(`Starting Herald with ${cli.balancer} (logs in ${path.join(home, 'logs')}) ...`);
  starting = startStack({
    nodes: NODES,
    redisUrl,
    redisPort: redisUrl ? undefined : await preferredPort(DEFAULT_PORTS.redis, host),
    dataDir: home,
    logDir: path.join(home, 'logs'),
    apiKeys: [secrets.apiKey],
    tokenSecret,
    host,
    balancer: cli.balancer,
    apiPort: ports.api,
    balancerPort: ports.balancer,
    workerPort: ports.worker,
    nodePorts,
    logLevel: process.env.HERALD_LOG_LEVEL || 'info',
    // Web Push (docs/webpush.md): the API serves the public key, the worker signs with the pair.
    env: {
      HERALD_VAPID_PUBLIC_KEY: process.env.HERALD_VAPID_PUBLIC_KEY || secrets.vapidPublicKey,
      HERALD_VAPID_PRIVATE_KEY: process.env.HERALD_VAPID_PRIVATE_KEY || secrets.vapidPrivateKey,
      HERALD_VAPID_SUBJECT: process.env.HERALD_VAPID_SUBJECT || 'mailto:herald@localhost',
    },
  });
  let stack: Stack;
  try {
    stack = await starting;
  } catch (err) {
    if (shutdown) return shutdown;
    console.error(`Herald did not start: ${(err as Error).message}`);
    return 1;
  }
  // Ctrl-C during the start: the signal handler stops it and exits.
  if (shutdown) return shutdown;
  const children: Record<string, number> = {};
  if (stack.redis) children['redis-server'] = stack.redis.pid;
  for (const app of [stack.api, stack.worker, ...stack.nodes]) children[app.name] = app.pid;
  children[stack.balancer.kind] = stack.balancer.pid;
  lock.update({ state: 'running', children });
  printBanner(stack, secrets.apiKey, !redisUrl);
  watchForCrashes([stack.api, stack.worker, ...stack.nodes], () => stopping);
  // Child processes keep the event loop alive; the signal handler exits.
  return new Promise<number>(() => {});
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
