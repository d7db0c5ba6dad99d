import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLaunchLock, type LockInfo, lockFile } from '../src/lock.js';
import { waitFor } from '../src/wait.js';
import { pidAlive, tempDir } from './helpers.js';

// `npm start` itself (dist/cli.js, built by turbo before tests) in a stand-in checkout: its apps are
// the fixture app, Redis and nginx are real. HERALD_REPO_ROOT points the launcher there.
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const FAKE_APP = fileURLToPath(new URL('./fixtures/fake-app.mjs', import.meta.url));

function fakeCheckout(): string {
  const root = tempDir('launcher');
  fs.writeFileSync(path.join(root, 'package.json'), '{"private":true}\n');
  for (const app of ['api', 'worker', 'node']) {
    fs.mkdirSync(path.join(root, 'apps', app, 'dist'), { recursive: true });
    fs.symlinkSync(FAKE_APP, path.join(root, 'apps', app, 'dist', 'main.js'));
  }
  return root;
}

interface Launcher {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const started: Launcher[] = [];
/** PIDs this file made (launchers' children left by a SIGKILLed launcher): stopped in afterAll. */
const toStop = new Set<number>();

function launch(root: string): Launcher {
  const env: NodeJS.ProcessEnv = { ...process.env, HERALD_REPO_ROOT: root, HERALD_NO_INSTALL: '1' };
  delete env.REDIS_URL;
  delete env.HERALD_BALANCER;
  // As `npm start` runs it: `node infra/local/dist/cli.js` from the repo root (a relative path).
  const cwd = path.resolve(path.dirname(CLI), '../../..');
  const child = spawn(process.execPath, [path.relative(cwd, CLI)], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d.slice(0, 100_000);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d.slice(0, 100_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const l = { child, pid: child.pid!, stdout: () => out, stderr: () => err, exited };
  started.push(l);
  return l;
}

async function running(l: Launcher): Promise<void> {
  let gone = false;
  void l.exited.then(() => {
    gone = true;
  });
  await waitFor(() => l.stdout().includes('Herald is running.'), {
    timeoutMs: 25_000,
    what: 'the launcher banner',
    bail: () => (gone ? `launcher exited: ${l.stderr()}` : undefined),
  });
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)),
  ]);
}

function readLock(root: string): LockInfo {
  return JSON.parse(fs.readFileSync(lockFile(path.join(root, '.herald')), 'utf8')) as LockInfo;
}

afterAll(async () => {
  for (const l of started)
    if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill('SIGTERM');
  await Promise.all(started.map((l) => bounded(l.exited, 15_000, 'launcher stop').catch(() => undefined)));
  for (const pid of toStop) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
});

describe('npm start: one launcher per checkout', () => {
  it('refuses a second launcher, names the running one, and takes over once it is gone', async () => {
    const root = fakeCheckout();
    const first = launch(root);
    await running(first);
    const apiUrl = /POST (http:\/\/\S+)\/v1\/notifications/.exec(first.stdout())![1]!;
    const wsUrl = /WebSocket: +(ws:\/\/\S+)/.exec(first.stdout())![1]!;
    const lock = readLock(root);
    expect(lock).toMatchObject({ pid: first.pid, state: 'running', apiUrl, wsUrl });
    const nginxConf = fs.readFileSync(path.join(root, '.herald', 'nginx', 'herald-stream.conf'), 'utf8');

    // The second one stops at once, touching nothing: exit 3 and the running stack's PID and URLs.
    const second = launch(root);
    expect(await bounded(second.exited, 10_000, 'second launcher')).toBe(3);
    expect(second.stderr()).toContain(
      `Herald is already running from this checkout (launcher PID ${first.pid}`,
    );
    expect(second.stderr()).toContain(`POST ${apiUrl}/v1/notifications`);
    expect(second.stderr()).toContain(`WebSocket:        ${wsUrl}`);
    expect(second.stderr()).toContain(`kill ${first.pid}`);
    expect(second.stdout()).not.toContain('Starting Herald');
    expect(readLock(root).pid).toBe(first.pid);
    expect(fs.readFileSync(path.join(root, '.herald', 'nginx', 'herald-stream.conf'), 'utf8')).toBe(
      nginxConf,
    );

    // kill -9 of the launcher leaves its children running on .herald/: the next one says which.
    expect(Object.keys(lock.children ?? {}).sort()).toEqual([
      'api',
      'nginx',
      'node-1',
      'node-2',
      'node-3',
      'redis-server',
      'worker',
    ]);
    const children = Object.values(lock.children!);
    for (const pid of children) toStop.add(pid);
    process.kill(first.pid, 'SIGKILL');
    await bounded(first.exited, 10_000, 'first launcher SIGKILL');
    const third = launch(root);
    expect(await bounded(third.exited, 10_000, 'third launcher')).toBe(3);
    expect(third.stderr()).toContain(`A previous Herald launcher (PID ${first.pid}) of this checkout died`);
    expect(third.stderr()).toContain(`kill ${children.join(' ')}`);

    // Once they are stopped, the lock is stale (its PID is dead) and the next launcher takes it.
    for (const pid of children) process.kill(pid, 'SIGTERM');
    await waitFor(() => children.every((pid) => !pidAlive(pid)), {
      timeoutMs: 15_000,
      what: 'orphans to stop',
    });
    const fourth = launch(root);
    await running(fourth);
    expect(fourth.stdout()).toContain(`took over a stale`);
    expect(fourth.stdout()).toContain(`launcher PID ${first.pid}`);
    expect(readLock(root)).toMatchObject({ pid: fourth.pid, state: 'running' });

    // A clean stop removes the lock.
    fourth.child.kill('SIGINT');
    expect(await bounded(fourth.exited, 20_000, 'fourth launcher stop')).toBe(0);
    expect(fs.existsSync(lockFile(path.join(root, '.herald')))).toBe(false);
  }, 90_000);
});

describe('acquireLaunchLock', () => {
  const deadPid = () => {
    const res = spawnSync(process.execPath, ['-e', '']);
    return res.pid;
  };
  const write = (home: string, info: Partial<LockInfo>) => {
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(lockFile(home), JSON.stringify(info));
  };

  it('takes a free lock leaving no temp file, takes over from a PID running another program, updates, releases', () => {
    const home = path.join(tempDir('lock'), '.herald');
    const got = acquireLaunchLock(home, '/repo/infra/local/dist/cli.js');
    expect(got.ok).toBe(true);
    if (!got.ok) return;
    expect(fs.readdirSync(home)).toEqual(['launcher.lock']); // no temp file left behind
    // This process runs vitest, not that script: a live launcher is recognised by its command line.
    const again = acquireLaunchLock(home, '/repo/infra/local/dist/cli.js');
    expect(again.ok).toBe(true); // the holder (this PID) does not run that script: stale, taken over
    got.lock.update({ apiUrl: 'http://127.0.0.1:1' });
    expect(JSON.parse(fs.readFileSync(lockFile(home), 'utf8'))).toMatchObject({
      apiUrl: 'http://127.0.0.1:1',
    });
    got.lock.release();
    expect(fs.existsSync(lockFile(home))).toBe(false);
  });

  it('refuses while the holder PID runs the launcher script it names', () => {
    const home = path.join(tempDir('lock-live'), '.herald');
    // This process's argv[1] (vitest's entry) plays the launcher script.
    write(home, { pid: process.pid, script: process.argv[1], startedAt: 'then', state: 'running' });
    const res = acquireLaunchLock(home, '/elsewhere/cli.js');
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.holder.pid).toBe(process.pid);
    expect(res.orphans).toEqual({});
  });

  it('takes over a lock whose PID is dead, from before a reboot, or whose content is not a lock', () => {
    const home = path.join(tempDir('lock-stale'), '.herald');
    write(home, { pid: deadPid(), script: '/x/cli.js', startedAt: 'then', state: 'running' });
    const a = acquireLaunchLock(home, '/x/cli.js');
    expect(a.ok && a.tookOver?.script).toBe('/x/cli.js');
    // Written before a reboot: its PIDs (this live process, as launcher and child) name other processes now.
    write(home, {
      pid: process.pid,
      script: process.argv[1],
      startedAt: 'then',
      state: 'running',
      bootId: 'an-earlier-boot',
      children: { 'redis-server': process.pid },
    });
    expect(acquireLaunchLock(home, '/x/cli.js').ok).toBe(true);
    fs.writeFileSync(lockFile(home), 'not json');
    const b = acquireLaunchLock(home, '/x/cli.js');
    expect(b.ok).toBe(true);
  });
});
