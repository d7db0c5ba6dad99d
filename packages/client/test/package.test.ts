import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeNode } from './fake-node.js';

// The SDK as someone outside this repo gets it: `npm pack`, installed from the tarball into a
// temp project with no workspace around it (offline: the package has no dependencies; `ws`, its
// optional peer, comes from the workspace's own copy packed the same way), then imported in Node,
// type-checked (with the README's examples) and bundled for the browser.

const run = promisify(execFile);
const PKG = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');
const WS_DIR = join(require.resolve('ws/package.json'), '..');
const NODE_TYPES = join(require.resolve('@types/node/package.json'), '..', '..');

let dir: string;
let tarball: string;
let wsTarball: string;
let node: FakeNode;

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, env: { ...process.env, npm_config_loglevel: 'error' } });
  return stdout;
}

/** Runs an ES module in the temp project; returns its stdout. */
async function nodeScript(name: string, code: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  writeFileSync(join(dir, name), code);
  const { stdout } = await run(process.execPath, [name], {
    cwd: dir,
    env: { ...process.env, ...env },
    timeout: 10_000,
  });
  return stdout;
}

/** Type-checks `files` in the temp project with its own tsconfig; throws with tsc's output. */
async function tsc(
  name: string,
  files: Record<string, string>,
  compilerOptions: Record<string, unknown>,
): Promise<void> {
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  const config = {
    compilerOptions: { strict: true, noEmit: true, target: 'ES2022', ...compilerOptions },
    files: Object.keys(files),
  };
  writeFileSync(join(dir, `tsconfig.${name}.json`), JSON.stringify(config));
  try {
    await run(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], { cwd: dir });
  } catch (err) {
    throw new Error(`tsc (${name}) failed:\n${(err as { stdout?: string }).stdout ?? String(err)}`);
  }
}

beforeAll(async () => {
  expect(existsSync(join(PKG, 'dist', 'index.js')), 'dist/ is missing: run npm run build').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'herald-sdk-'));
  const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', dir], PKG)) as {
    filename: string;
    files: { path: string }[];
  }[];
  tarball = join(dir, packed[0]!.filename);
  const wsPacked = JSON.parse(await npm(['pack', '--json', '--pack-destination', dir], WS_DIR)) as {
    filename: string;
  }[];
  wsTarball = join(dir, wsPacked[0]!.filename);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  await npm(['install', '--offline', '--no-audit', '--no-fund', tarball], dir);
  node = await FakeNode.start();
}, 60_000);

afterAll(async () => {
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the packed SDK, installed outside the workspace', () => {
  it('is a public package with a license, no dependencies and only dist/ inside', async () => {
    const pkg = JSON.parse(readFileSync(join(dir, 'node_modules/@herald/client/package.json'), 'utf8'));
    expect(pkg.private).toBeUndefined();
    expect(pkg.license).toBe('Apache-2.0');
    expect(pkg.dependencies).toBeUndefined();
    expect(pkg.peerDependenciesMeta).toEqual({ ws: { optional: true } });
    const listing = (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter(Boolean).sort();
    expect(listing).toEqual(
      expect.arrayContaining([
        'package/LICENSE',
        'package/README.md',
        'package/dist/herald.browser.js',
        'package/dist/index.d.ts',
        'package/dist/index.js',
        'package/dist/protocol/index.d.ts',
        'package/dist/webpush.js',
        'package/dist/webpush.d.ts',
        'package/dist/sw.js',
        'package/dist/sw.d.ts',
        'package/package.json',
      ]),
    );
    expect(listing.filter((f) => !f.startsWith('package/dist/') && !/^package\/[^/]+$/.test(f))).toEqual([]);
    // Nothing of the workspace is imported at runtime.
    for (const f of ['index.js', 'webpush.js', 'sw.js'])
      expect(readFileSync(join(dir, `node_modules/@herald/client/dist/${f}`), 'utf8')).not.toMatch(
        /@herald\//,
      );
  });

  it('has the Web Push entries apart from the main one (docs/webpush.md)', async () => {
    const out = await nodeScript(
      'webpush.mjs',
      `import * as wp from '@herald/client/webpush';
import * as sw from '@herald/client/sw';
console.log(JSON.stringify({ wp: Object.keys(wp).sort(), sw: Object.keys(sw).sort() }));`,
    );
    expect(JSON.parse(out)).toEqual({
      wp: ['pushedIds', 'registerWebPush', 'unregisterWebPush'],
      sw: ['installHeraldPush', 'parsePush', 'recordPushed', 'showPush'],
    });
  });

  it('imports in Node and, without ws on Node 20, says what to install', async () => {
    const out = await nodeScript(
      'no-ws.mjs',
      `import * as sdk from '@herald/client';
// transport 'websocket': 'auto' would go on to SSE (saying the same in a non-fatal error).
const client = new sdk.HeraldClient({ url: '${node.url}', token: 't', lifecycle: false, transport: 'websocket' });
// Node 22+ has a global WebSocket: nothing to miss there.
const err = globalThis.WebSocket ? undefined : await client.connect().then(() => undefined, (e) => e);
console.log(JSON.stringify({ exports: Object.keys(sdk).sort(), code: err?.code, message: err?.message }));`,
    );
    const r = JSON.parse(out) as { exports: string[]; code?: string; message?: string };
    expect(r.exports).toEqual(
      expect.arrayContaining([
        'HeraldClient',
        'HeraldError',
        'LocalStorageCursorStorage',
        'MemoryCursorStorage',
      ]),
    );
    if ((globalThis as { WebSocket?: unknown }).WebSocket === undefined) {
      expect(r.code).toBe('socket_failed');
      expect(r.message).toContain('npm install ws');
    }
  });

  it('connects to a node and receives a notification once ws is installed', async () => {
    await npm(['install', '--offline', '--no-audit', '--no-fund', wsTarball], dir);
    const done = nodeScript(
      'with-ws.mjs',
      `import { HeraldClient } from '@herald/client';
const client = new HeraldClient({ url: '${node.url}', token: 't', lifecycle: false });
client.on('notification', async (n) => {
  console.log(JSON.stringify({ id: n.id, data: n.data }));
  await client.close();
});
await client.connect();`,
    );
    const s = await node.nextSocket(10_000);
    await s.welcome();
    s.notify('inbox', 1, 'n1', { hello: 'world' });
    expect(JSON.parse(await done)).toEqual({ id: 'n1', data: { hello: 'world' } });
  });

  it("type-checks a consumer of both entries, and the README's ts examples", async () => {
    const consumer = `import { HeraldClient, type HeraldError, type NotificationFrame } from '@herald/client';
import { HeraldClient as BrowserClient } from '@herald/client/browser';
const c: HeraldClient = new BrowserClient({ url: 'wss://x', token: () => 't', pingIdleMs: 15000 });
c.on('notification', (n: NotificationFrame) => n.seq + 1);
c.on('error', (e: HeraldError) => e.fatal);
// @ts-expect-error: a wrong option type is caught
new HeraldClient({ url: 'wss://x', token: 1 });
`;
    const readme = readFileSync(join(PKG, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const examples = Object.fromEntries(blocks.map((b, i) => [`readme-${i + 1}.ts`, `${b}\nexport {};\n`]));
    await Promise.all([
      // A browser app with a bundler; the SDK's own declarations are checked too (skipLibCheck off).
      tsc(
        'browser',
        { 'consumer.ts': consumer },
        {
          module: 'ESNext',
          moduleResolution: 'bundler',
          lib: ['ES2022', 'DOM'],
          types: [],
          skipDefaultLibCheck: true,
        },
      ),
      // Node (NodeNext resolution), with the README's examples, some of which use node: modules.
      tsc(
        'node',
        { 'consumer.ts': consumer, ...examples },
        {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022', 'DOM'],
          typeRoots: [NODE_TYPES],
          types: ['node'],
          skipLibCheck: true,
        },
      ),
    ]);
  }, 30_000);

  it('bundles for the browser with esbuild, without ws or node: modules', async () => {
    writeFileSync(
      join(dir, 'app.js'),
      `import { HeraldClient } from '@herald/client';
import * as browser from '@herald/client/browser';
export const ok = typeof HeraldClient === 'function' && typeof browser.HeraldClient === 'function';`,
    );
    const result = await build({
      absWorkingDir: dir,
      entryPoints: ['app.js'],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
    });
    const text = result.outputFiles[0]!.text;
    expect(text).not.toMatch(/\bfrom\s*["'`]/);
    expect(text).not.toMatch(/\bimport\s*\(\s*["'`]/);
    expect(text).not.toMatch(/["'`]node:/);
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`)) as {
      ok: boolean;
    };
    expect(mod.ok).toBe(true);
  });
});
