/** The Nchan peer: nginx with the Nchan module (memory store), rendered from bench/peers/nchan. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findExecutable, freePort, ManagedProcess, renderTemplate, waitForTcp } from '@herald/stack';
import { socketsPerProcess } from './limits.js';
import { nginxGroup } from './procstat.js';
import type { RunningSystem, StartOptions } from './system-types.js';

const NCHAN_TEMPLATE = fileURLToPath(new URL('../peers/nchan/nginx.conf.template', import.meta.url));

export const NCHAN_MISSING =
  'Nchan is not installed (libnginx-mod-nchan); run bench/setup.sh (apt-get install -y libnginx-mod-nchan)';

/** Path of the Nchan dynamic module, or undefined when it is not installed. */
export function nchanModule(): string | undefined {
  const bin = findExecutable('nginx', 'NGINX_BIN');
  if (!bin) return undefined;
  const res = spawnSync(bin, ['-V'], { encoding: 'utf8', timeout: 10_000 });
  const text = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  const modulesDir = /--modules-path=(\S+)/.exec(text)?.[1] ?? '/usr/lib/nginx/modules';
  return [
    process.env.NCHAN_MODULE,
    path.join(modulesDir, 'ngx_nchan_module.so'),
    '/usr/lib/nginx/modules/ngx_nchan_module.so',
    '/usr/share/nginx/modules/ngx_nchan_module.so',
  ]
    .filter((f): f is string => Boolean(f))
    .find((f) => fs.existsSync(f));
}

export async function startNchan(o: StartOptions, transport: 'ws' | 'sse' = 'ws'): Promise<RunningSystem> {
  const module = nchanModule();
  const bin = findExecutable('nginx', 'NGINX_BIN');
  if (!module || !bin) throw new Error(NCHAN_MISSING);
  const per = socketsPerProcess();
  const workers = Math.max(2, Math.ceil((o.peak * 1.2) / per));
  const prefix = path.join(o.dir, 'nchan');
  fs.mkdirSync(path.join(prefix, 'tmp'), { recursive: true });
  fs.mkdirSync(o.logDir, { recursive: true });
  // Workers drop to nobody when the master is root: let them reach the prefix.
  for (let d = prefix; d.startsWith(o.dir) && d.length > 1; d = path.dirname(d)) fs.chmodSync(d, 0o755);
  fs.chmodSync(o.dir, 0o755);
  const port = await freePort();
  const errorLog = path.join(o.logDir, 'nchan-error.log');
  const conf = path.join(prefix, 'nginx.conf');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  fs.writeFileSync(
    conf,
    renderTemplate(fs.readFileSync(NCHAN_TEMPLATE, 'utf8'), {
      NCHAN_MODULE: module,
      USER: isRoot ? 'user nobody nogroup;' : '',
      WORKERS: String(workers),
      RLIMIT_NOFILE: String(200_000),
      PREFIX: prefix,
      ERROR_LOG: errorLog,
      WORKER_CONNECTIONS: String(per),
      SHM_SIZE: '512m',
      LISTEN: `127.0.0.1:${port}`,
    }),
  );
  const check = spawnSync(bin, ['-t', '-p', prefix, '-c', conf, '-e', errorLog], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (check.status !== 0) throw new Error(`nchan config check failed:\n${check.stderr}`);
  const proc = await ManagedProcess.start({
    command: bin,
    args: ['-p', prefix, '-c', conf, '-e', errorLog, '-g', 'daemon off;'],
    logFile: path.join(o.logDir, 'nchan.log'),
    name: 'nchan',
  });
  try {
    await waitForTcp('127.0.0.1', port, 20_000, () =>
      proc.running ? undefined : `nginx (nchan) exited:\n${proc.logTail()}`,
    );
  } catch (err) {
    await proc.stop('SIGKILL', 2000);
    throw err;
  }
  const sse = transport === 'sse';
  return {
    name: sse ? 'nchan-sse' : 'nchan',
    clientKind: sse ? 'nchan-sse' : 'nchan',
    urls: [`${sse ? 'http' : 'ws'}://127.0.0.1:${port}`],
    groups: [nginxGroup('nginx', () => proc.pid, true)],
    publish(pub, target, body) {
      const channel =
        target.kind === 'topic' ? target.topic : target.kind === 'device' ? target.device : 'all';
      return pub.post(`http://127.0.0.1:${port}/pub/${channel}`, body);
    },
    info: {
      workers,
      module,
      port,
      store: 'memory',
      subscriber: sse ? 'eventsource (GET /sse/<channel>)' : 'websocket (/sub/<channel>)',
      conf: 'bench/peers/nchan/nginx.conf.template',
    },
    logs: [errorLog],
    stop: async () => {
      // SIGQUIT would wait for open WebSockets; SIGTERM is nginx's fast shutdown.
      await proc.stop('SIGTERM', 10_000);
    },
  };
}
