import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type BrowserContext, chromium } from 'playwright-core';

const run = promisify(execFile);

/** Debian's Chromium: playwright-core drives it; nothing is downloaded by Playwright itself. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags for a quiet, sandbox-less headless Chromium in a container, with no network of its own. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function apt(args: string[], timeoutMs: number): Promise<string | undefined> {
  try {
    await run('apt-get', args, {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 64 << 20,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    return undefined;
  } catch (err) {
    const e = err as { stderr?: string; message: string; killed?: boolean };
    if (e.killed) return `apt-get ${args.join(' ')} took longer than ${timeoutMs / 1000} s`;
    return (e.stderr?.trim().split('\n').slice(-3).join(' | ') || e.message).slice(0, 500);
  }
}

/**
 * Installs Debian's `chromium` package when /usr/bin/chromium is missing (root only), first from
 * the package lists there are, then after an `apt-get update`. Every step is bounded.
 */
export async function ensureChromium(): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0)
    throw new Error(
      `${CHROMIUM} is missing and this is not root: install it with sudo apt-get install -y chromium`,
    );
  let why = await apt(['install', '-y', 'chromium'], 300_000);
  if (why !== undefined)
    why = (await apt(['update'], 180_000)) ?? (await apt(['install', '-y', 'chromium'], 300_000));
  if (!existsSync(CHROMIUM))
    throw new Error(
      `could not install Chromium (apt-get install -y chromium): ${why ?? `no ${CHROMIUM} afterwards`}`,
    );
}

export interface Browser {
  context: BrowserContext;
  /** Closes Chromium and removes its profile. */
  close(): Promise<void>;
}

/** A headless Chromium with a new, empty profile (`--user-data-dir`). */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'herald-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 30_000,
    viewport: { width: 1100, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
