import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** System dependencies that `bin/ensure-deps.sh` checks for and installs (Debian packages). */
export type SystemDep = 'redis' | 'nginx' | 'haproxy' | 'chromium' | 'curl';

/** infra/local/bin/ensure-deps.sh, found from this package (src/ or dist/). */
export const ENSURE_DEPS = fileURLToPath(new URL('../bin/ensure-deps.sh', import.meta.url));

/**
 * Runs `bin/ensure-deps.sh <deps>`: nothing when all are present, else installs them with apt-get
 * as root or with passwordless sudo (saying what it runs), else prints the one command to run.
 * Its messages go to this process's stderr. True when everything is present afterwards. Bounded:
 * apt-get steps have their own 10-minute limit; the whole run is stopped after 25 minutes.
 */
export function ensureSystemDeps(deps: readonly SystemDep[]): boolean {
  if (deps.length === 0) return true;
  const res = spawnSync('bash', [ENSURE_DEPS, ...deps], {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 25 * 60_000,
    killSignal: 'SIGKILL',
  });
  return res.status === 0;
}
