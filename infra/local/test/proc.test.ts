import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { liveProcesses, ManagedProcess, waitFor } from '../src/index.js';
import { pidAlive, tempDir } from './helpers.js';

describe('ManagedProcess', () => {
  it('stops a `sleep 60` child by its PID', async () => {
    const logFile = path.join(tempDir('proc'), 'sleep.log');
    const proc = await ManagedProcess.start({ command: 'sleep', args: ['60'], logFile });
    expect(proc.pid).toBeGreaterThan(0);
    expect(pidAlive(proc.pid)).toBe(true);
    expect(liveProcesses()).toContain(proc);

    const started = Date.now();
    const code = await proc.stop();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(code).toBeNull();
    expect(proc.signalCode).toBe('SIGTERM');
    expect(proc.running).toBe(false);
    expect(pidAlive(proc.pid)).toBe(false);
    expect(liveProcesses()).not.toContain(proc);
    // idempotent
    await expect(proc.stop()).resolves.toBeNull();
  });

  it('SIGKILLs a child that ignores SIGTERM at the deadline', async () => {
    const logFile = path.join(tempDir('proc'), 'stubborn.log');
    const proc = await ManagedProcess.start({
      command: process.execPath,
      args: [
        '-e',
        "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('up'); setInterval(() => {}, 1000);",
      ],
      logFile,
    });
    // wait until the handler is installed (it prints "up"), on the log file rather than a sleep
    await new Promise<void>((resolve) => {
      const check = () =>
        /^up$/m.test(fs.readFileSync(logFile, 'utf8')) ? resolve() : setTimeout(check, 20);
      check();
    });
    const code = await proc.stop('SIGTERM', 300);
    expect(code).toBeNull();
    expect(proc.signalCode).toBe('SIGKILL');
    expect(fs.readFileSync(logFile, 'utf8')).toContain('ignoring SIGTERM');
  });

  it('appends output to the log file and reports the exit code', async () => {
    const logFile = path.join(tempDir('proc'), 'out.log');
    const proc = await ManagedProcess.start({
      command: process.execPath,
      args: ['-e', 'console.log(process.env.GREETING); console.error("to stderr"); process.exit(3)'],
      env: { GREETING: 'hello-from-child' },
      logFile,
    });
    await expect(proc.exited).resolves.toBe(3);
    const log = fs.readFileSync(logFile, 'utf8');
    expect(log).toContain('hello-from-child');
    expect(log).toContain('to stderr');
  });

  it('rejects when the command does not exist', async () => {
    const logFile = path.join(tempDir('proc'), 'missing.log');
    await expect(ManagedProcess.start({ command: 'herald-no-such-binary', logFile })).rejects.toThrow(
      /cannot start/,
    );
  });
});

// The parent side runs from dist/ (a plain node child cannot load the TypeScript sources);
// `npm test` builds first (turbo: test dependsOn build).
const distIndex = fileURLToPath(new URL('../dist/index.js', import.meta.url));

describe('no orphans when the parent goes away', () => {
  beforeAll(() => {
    if (!fs.existsSync(distIndex)) throw new Error(`${distIndex} is missing: build first (npm run build)`);
  });
  for (const how of ['exit', 'throw', 'SIGTERM', 'SIGINT'] as const) {
    it(`parent ends by ${how}: its ManagedProcess children are killed`, async () => {
      const dir = tempDir('orphan');
      const script = [
        `import { ManagedProcess } from ${JSON.stringify(pathToFileURL(distIndex).href)};`,
        `const p = await ManagedProcess.start({ command: 'sleep', args: ['60'], logFile: ${JSON.stringify(path.join(dir, 'sleep.log'))} });`,
        'console.log(p.pid);',
        `if (${JSON.stringify(how)} === 'exit') process.exit(0);`,
        `if (${JSON.stringify(how)} === 'throw') throw new Error('boom');`,
        'setInterval(() => {}, 1000);',
      ].join('\n');
      const parent = await ManagedProcess.start({
        command: process.execPath,
        args: ['--input-type=module', '-e', script],
        logFile: path.join(dir, 'parent.log'),
      });
      // the parent prints the child's PID once the child runs
      let childPid = 0;
      await waitFor(
        () => {
          const m = /^(\d+)$/m.exec(fs.readFileSync(parent.logFile, 'utf8'));
          childPid = m ? Number(m[1]) : 0;
          return childPid > 0;
        },
        { timeoutMs: 10_000, intervalMs: 20, what: 'the parent to print the child PID' },
      );
      if (how === 'SIGTERM' || how === 'SIGINT') parent.signal(how);
      await parent.exited;
      await waitFor(() => !pidAlive(childPid), {
        timeoutMs: 3000,
        intervalMs: 20,
        what: `child ${childPid} to die`,
      });
    });
  }
});
