import fs from 'node:fs';
import path from 'node:path';

/**
 * The one command that installs every system binary the local stack needs with the default nginx
 * balancer (Debian/Ubuntu); `--balancer haproxy` needs `haproxy` instead of the nginx packages.
 */
export const INSTALL_HINT = 'sudo apt-get install -y redis-server nginx libnginx-mod-stream';

/** `sudo apt-get install -y <packages>` (Debian/Ubuntu). */
export function installCommand(packages: readonly string[]): string {
  return `sudo apt-get install -y ${packages.join(' ')}`;
}

/** sbin dirs are often missing from a non-root PATH, but that is where Debian puts nginx. */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin'];

/**
 * Absolute path of an executable: `envVar` (e.g. NGINX_BIN) when set, else the first match on PATH
 * and the usual sbin dirs; undefined when not found.
 */
export function findExecutable(name: string, envVar?: string): string | undefined {
  const override = envVar ? process.env[envVar] : undefined;
  if (override) return isExecutable(override) ? override : undefined;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
