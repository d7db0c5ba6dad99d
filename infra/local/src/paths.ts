import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The monorepo root: HERALD_REPO_ROOT when set, else three levels up from this file
 * (infra/local/src or infra/local/dist).
 */
export function repoRoot(): string {
  const override = process.env.HERALD_REPO_ROOT;
  if (override) return path.resolve(override);
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  if (!fs.existsSync(path.join(root, 'package.json'))) {
    throw new Error(`repo root not found at ${root} (set HERALD_REPO_ROOT)`);
  }
  return path.resolve(root);
}

/** `<repo>/.herald`: local state of `npm start` (redis data, logs, secrets). */
export function heraldHome(): string {
  return path.join(repoRoot(), '.herald');
}
