import path from 'node:path';
import { freePort, ManagedProcess, waitForHttp } from '@herald/stack';
import { ulimitWrapped } from './limits.js';
import type { StartOptions } from './system-types.js';

/**
 * Starts `count` Node processes of a peer's `script` (each on a free port given in PORT, with a
 * raised descriptor limit) and waits for each one's `/healthz`. The processes started so far are
 * in `procs` (with their ports in `ports`) even when it throws, for the caller to stop.
 */
export async function startPeerProcesses(
  o: StartOptions,
  script: string,
  name: string,
  count: number,
  env: Record<string, string>,
  procs: ManagedProcess[],
  ports: number[],
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    ports.push(port);
    procs.push(
      await ManagedProcess.start({
        command: 'bash',
        args: ulimitWrapped(process.execPath, [script]),
        env: { PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production', ...env },
        logFile: path.join(o.logDir, `${name}-${i + 1}.log`),
        name: `${name}-${i + 1}`,
      }),
    );
  }
  await Promise.all(
    ports.map((port, i) =>
      waitForHttp(`http://127.0.0.1:${port}/healthz`, 20_000, () =>
        procs[i]!.running ? undefined : `${name}-${i + 1} exited:\n${procs[i]!.logTail()}`,
      ),
    ),
  );
}
