import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ENSURE_DEPS } from '../src/deps.js';

// The shared installer of `npm start`, `npm test` (pretest), .ci/run and the browser test. These
// machines have everything, so the install itself is not run here; HERALD_NO_INSTALL keeps the
// "missing" case from calling apt-get.
function run(args: string[], env: Record<string, string> = {}) {
  const started = performance.now();
  const res = spawnSync('bash', [ENSURE_DEPS, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, ...env },
  });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr, ms: performance.now() - started };
}

describe('bin/ensure-deps.sh', () => {
  it('says nothing and exits 0 at once when everything is there', () => {
    const res = run(['redis', 'nginx', 'haproxy', 'chromium', 'curl']);
    expect(res).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(res.ms).toBeLessThan(2000); // measured: about 40 ms
  });

  it('prints the one install command for what is missing when it may not install', () => {
    const res = run(['redis', 'nginx', 'haproxy'], {
      HERALD_NO_INSTALL: '1',
      REDIS_SERVER_BIN: '/nonexistent/redis-server',
      HAPROXY_BIN: '/nonexistent/haproxy',
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('missing: redis haproxy');
    expect(res.stderr).toContain('  sudo apt-get install -y redis-server haproxy\n');
  });

  it('rejects an unknown name with exit 2', () => {
    const res = run(['redis', 'postgres']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('unknown dependency "postgres" (known: redis nginx haproxy chromium curl)');
  });
});
