import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemDeps, findExecutable } from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vapidKeys } from '../support/push-service.js';
import { API_KEY, type SystemStack, startSystem, TOKEN_SECRET } from '../support/system.js';

// The docs are the contract, so their shell examples must run: every ```sh (or bash, shell) block
// of README.md and docs/*.md runs in bash against a real stack (Redis, API, worker, 3 nodes, nginx
// on free ports), from the repo root, with `herald` (packages/cli) on PATH, and must exit 0.
//
// What the test does to a block, as a reader would:
// - the local URLs (http://127.0.0.1:8080, ws://127.0.0.1:8000/v1/ws) become the stack's;
// - the environment the docs imply is set: KEY (API key), TOKEN (device token of dev-1 / alice),
//   HERALD (API URL), ID (a notification scheduled an hour ahead), and HERALD_API_URL,
//   HERALD_WS_URL, HERALD_API_KEY, HERALD_TOKEN_SECRET for the CLI (what .herald/secrets.json
//   gives it after `npm start`); a line assigning a literal to KEY, TOKEN, HERALD or ID is the
//   reader's placeholder (`KEY=...`) and is left out;
// - `npx herald` runs node_modules/.bin/herald directly (what npx resolves it to, without npm's
//   start-up time);
// - `curl` answers an HTTP error with a non-zero exit (--fail-with-body), as a reader would see
//   the error body and stop;
// - a long-running command (`npx herald subscribe` without --count) runs in the background for the
//   rest of the block, must not exit with an error, and is stopped with SIGTERM after it;
// - anything a block leaves running (`node -e ... &`) is stopped with its process group.
// A block preceded by `<!-- example: skip <reason> -->` is not run; such skips are few (npm ci,
// npm start, npm test) and each gives its reason.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAX_SKIPS = 3;
const BLOCK_TIMEOUT_MS = 60_000;
const OUTPUT_CAP = 64 * 1024;
const PLACEHOLDER_VARS = ['KEY', 'TOKEN', 'HERALD', 'ID'];
/** Commands that run until stopped, unless bounded by one of these flags. */
const LONG_RUNNING = [{ command: /^npx herald subscribe\b/, boundedBy: /--count\b/ }];

interface Example {
  file: string;
  line: number;
  code: string;
  skip?: string;
}

function examples(): Example[] {
  const files = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
    f.endsWith('.md'),
  );
  const found: Example[] = [];
  for (const file of files) {
    const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!/^```(sh|bash|shell)$/.test(lines[i]!.trim())) continue;
      const end = lines.findIndex((l, j) => j > i && l.trim() === '```');
      if (end < 0) throw new Error(`${file}:${i + 1}: unclosed \`\`\`sh block`);
      const marker = /^<!--\s*example:\s*skip\b(.*?)-->\s*$/.exec(lines[i - 1] ?? '');
      found.push({
        file,
        line: i + 1,
        code: lines.slice(i + 1, end).join('\n'),
        ...(marker ? { skip: marker[1]!.trim() } : {}),
      });
      i = end;
    }
  }
  return found;
}

/** The block as the test runs it (see the header). */
function prepare(code: string, stack: SystemStack, stateDir: string): { script: string; background: number } {
  let background = 0;
  const out: string[] = [
    'set -euo pipefail',
    // Background jobs started by the test report their exit code here.
    // `npx <bin>` of a workspace bin, minus npm's start-up (about 1.1 s a call, measured): the same
    // node_modules/.bin/<bin> that npx itself resolves to in this repo.
    `npx() { if [ -x "${ROOT}node_modules/.bin/$1" ]; then local b=$1; shift; "${ROOT}node_modules/.bin/$b" "$@"; else command npx "$@"; fi; }`,
    `__bg() { local n=$1; shift; { "$@" && echo 0 > "${stateDir}/bg-$n.rc" || echo $? > "${stateDir}/bg-$n.rc"; } > "${stateDir}/bg-$n.log" 2>&1 & }`,
  ];
  const text = code
    .replaceAll('http://127.0.0.1:8080', stack.apiUrl)
    .replaceAll('ws://127.0.0.1:8000/v1/ws', stack.wsUrl);
  for (const line of text.split('\n')) {
    const assign = /^([A-Z_]+)=(\S*)/.exec(line);
    if (assign && PLACEHOLDER_VARS.includes(assign[1]!) && !assign[2]!.startsWith('$(')) {
      out.push(`# placeholder left out: ${line}`);
      continue;
    }
    const long = LONG_RUNNING.find((l) => l.command.test(line) && !l.boundedBy.test(line));
    if (long) {
      // The command without its trailing comment, run in the background by __bg.
      const command = line.replace(/\s+#\s.*$/, '').replace(/\s*&\s*$/, '');
      out.push(`__bg ${++background} ${command}`);
      continue;
    }
    out.push(line);
  }
  return { script: `${out.join('\n')}\n`, background };
}

interface Run {
  /** The bash process, leader of the block's process group. */
  pid: number;
  code: number | null;
  output: string;
}

/** Runs bash in its own process group; afterwards stops the whole group (jobs left running). */
function runBash(scriptFile: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('bash', [scriptFile], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const add = (d: Buffer) => {
      if (output.length < OUTPUT_CAP) output += d.toString('utf8');
    };
    child.stdout!.on('data', add);
    child.stderr!.on('data', add);
    const timer = setTimeout(() => {
      output += `\n[the docs test: no exit within ${timeoutMs} ms]`;
      killGroup(child.pid!, 'SIGKILL');
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ pid: child.pid!, code, output });
    });
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/** Waits (bounded) until nothing of the group is left; SIGKILL if SIGTERM was not enough. */
async function stopGroup(pid: number): Promise<void> {
  killGroup(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      process.kill(-pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  killGroup(pid, 'SIGKILL');
}

const all = examples();
const runnable = all.filter((e) => e.skip === undefined);

let sys: SystemStack;
let env: NodeJS.ProcessEnv;
let work: string;

beforeAll(async () => {
  // Web Push on, as `npm start` has it (docs/webpush.md's examples register subscriptions).
  const vapid = vapidKeys();
  sys = await startSystem({
    nodes: 3,
    env: {
      HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
      HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
      HERALD_VAPID_SUBJECT: 'mailto:docs@herald.test',
    },
  });
  work = path.join(sys.dir, 'docs-examples');
  const bin = path.join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  // Installed when missing, by the same script as npm start's and npm test's packages.
  const curl = ensureSystemDeps(['curl']) ? findExecutable('curl') : undefined;
  if (!curl) throw new Error('curl is missing: sudo apt-get install -y curl');
  writeFileSync(path.join(bin, 'curl'), `#!/bin/sh\nexec ${curl} --fail-with-body "$@"\n`);
  chmodSync(path.join(bin, 'curl'), 0o755);
  const herald = path.join(ROOT, 'node_modules', '.bin');
  if (!existsSync(path.join(herald, 'herald')))
    throw new Error(`no herald bin in ${herald} (npm ci links it)`);

  const scheduled = await sys.publish({
    to: { users: ['alice'] },
    data: { remind: 'standup' },
    deliverAt: new Date(Date.now() + 3600_000).toISOString(),
  });
  expect(scheduled.status).toBe(202);
  env = {
    ...process.env,
    PATH: `${bin}:${herald}:${process.env.PATH ?? ''}`,
    KEY: API_KEY,
    TOKEN: await sys.token('dev-1', 'alice'),
    HERALD: sys.apiUrl,
    ID: String(scheduled.body.id),
    HERALD_API_URL: sys.apiUrl,
    HERALD_WS_URL: sys.wsUrl,
    HERALD_API_KEY: API_KEY,
    HERALD_TOKEN_SECRET: TOKEN_SECRET,
    npm_config_update_notifier: 'false',
  };
  delete env.REDIS_URL;
}, 60_000);

afterAll(async () => {
  await sys?.teardown();
});

describe('shell examples in README.md and docs/*.md', () => {
  it(`finds them, and skips few, each with a reason (${all.length} blocks, ${all.length - runnable.length} skipped)`, () => {
    expect(runnable.length).toBeGreaterThanOrEqual(10);
    const skipped = all.filter((e) => e.skip !== undefined);
    expect(skipped.length).toBeLessThanOrEqual(MAX_SKIPS);
    for (const e of skipped) expect(e.skip, `${e.file}:${e.line} skip without a reason`).toMatch(/\w{3,}/);
  });

  it.each(runnable.map((e) => [`${e.file}:${e.line}`, e] as const))(
    '%s exits 0',
    async (where, example) => {
      const stateDir = path.join(work, where.replace(/[^\w.-]/g, '_'));
      mkdirSync(stateDir, { recursive: true });
      const { script, background } = prepare(example.code, sys, stateDir);
      const scriptFile = path.join(stateDir, 'example.sh');
      writeFileSync(scriptFile, script);
      const run = await runBash(scriptFile, env, BLOCK_TIMEOUT_MS);
      // Background commands still running are the ones meant to run until stopped; any that
      // already exited must have succeeded. Then the block's process group is stopped.
      const early: string[] = [];
      for (let n = 1; n <= background; n++) {
        const rcFile = path.join(stateDir, `bg-${n}.rc`);
        if (existsSync(rcFile) && readFileSync(rcFile, 'utf8').trim() !== '0') {
          early.push(
            `background command ${n} exited ${readFileSync(rcFile, 'utf8').trim()}: ${readFileSync(path.join(stateDir, `bg-${n}.log`), 'utf8').slice(0, 2000)}`,
          );
        }
      }
      await stopGroup(run.pid);
      const message = `${where} exited ${run.code}\n--- script\n${script}--- output\n${run.output}`;
      expect(run.code, message).toBe(0);
      expect(early, message).toEqual([]);
    },
    BLOCK_TIMEOUT_MS + 15_000,
  );
});
