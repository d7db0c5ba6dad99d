import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureSystemDeps } from '@herald/stack';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

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

/**
 * Installs Debian's `chromium` package when /usr/bin/chromium is missing, through the shared
 * installer (infra/local/bin/ensure-deps.sh: root or passwordless sudo, else it prints the command).
 */
export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  if (!ensureSystemDeps(['chromium']) || !existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install it with sudo apt-get install -y chromium`);
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

/** Page errors and console errors (a CSP violation shows up there): a test ends with none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

/** How long and how often a browser test polls the page for what it waits on. */
export const POLL = { timeout: 15_000, interval: 100 };
