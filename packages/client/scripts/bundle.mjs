#!/usr/bin/env node
// The SDK's build (`npm run build`), so the package installs outside this repo with no
// workspace packages behind it:
// - dist/index.js: the ESM entry for Node and bundlers, with @herald/protocol's code bundled in
//   (the protocol package is not published; the SDK has no runtime dependencies at all);
// - dist/*.d.ts: tsc's declarations, with the protocol's declarations copied to dist/protocol/
//   and `@herald/protocol` imports pointed there;
// - dist/herald.browser.js: one minified ESM file for a <script type="module"> or an `import`
//   from a page. The size test (test/bundle.test.ts) builds it in memory with the same options.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
export const ENTRY = join(ROOT, 'src', 'index.ts');
export const OUTFILE = join(DIST, 'herald.browser.js');
export const NODE_OUTFILE = join(DIST, 'index.js');
/**
 * Web Push (docs/webpush.md) has entries of its own, so the main bundle does not grow:
 * `@herald/client/webpush` for pages (registerWebPush, pushedIds) and `@herald/client/sw` for
 * the service worker. Readable ESM like the main entry, with the protocol types inlined.
 */
export const EXTRA_ENTRIES = { webpush: join(ROOT, 'src', 'webpush.ts'), sw: join(ROOT, 'src', 'sw.ts') };
/**
 * gzip budget of the browser bundle, in bytes. Was 8 KiB for the WebSocket-only client (6,551 bytes
 * gzipped); raised to 9 KiB for the HTTP transports of issue #15 (SSE over a streamed fetch,
 * long-poll, HTTP acks, `auto` fallback and its memory), measured at 9,134 bytes gzipped after
 * compacting them (closures instead of classes: the class version measured 9,381). Reported to
 * the lead rather than raised silently.
 */
export const GZIP_BUDGET = 9 * 1024;

const PROTOCOL_DIR = dirname(createRequire(import.meta.url).resolve('@herald/protocol'));

/**
 * Marks the protocol's modules free of side effects, so the modules and statements the SDK does
 * not use are dropped: its error catalog (documentation strings the node and API need, the SDK
 * does not) is built with top-level calls, which esbuild otherwise keeps. Measured on the browser
 * bundle: 25,213 bytes / 8,563 gzipped with the catalog, 20,647 / 6,545 without.
 */
const protocolPure = {
  name: 'protocol-side-effect-free',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) =>
      args.importer.startsWith(PROTOCOL_DIR)
        ? { path: join(dirname(args.importer), args.path), sideEffects: false }
        : undefined,
    );
  },
};

/** esbuild options of the browser bundle. */
export const browserOptions = {
  entryPoints: [ENTRY],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // ES2022 syntax, as evergreen browsers have had since 2022 (class fields: see tsconfigRaw below).
  target: ['es2022'],
  // Whitespace and names only. Syntax minification would fold the SDK's computed `import(specifier)`
  // of `ws` (Node 20 only) back into a literal `import("ws")`, which a bundler that consumes this
  // file would then try to resolve; it would save only ~30 bytes gzipped.
  minifyWhitespace: true,
  minifyIdentifiers: true,
  legalComments: 'none',
  // Class fields assigned in the constructor instead of declared (`key;storage;...` in the output):
  // 147 bytes gzipped less, measured, which paid for the ack interval (issue #14, +49). Nothing in
  // the SDK reads a field it never assigned or enumerates an instance's own keys.
  tsconfigRaw: { compilerOptions: { useDefineForClassFields: false, verbatimModuleSyntax: true } },
  // `ws` is only ever loaded in Node through a computed dynamic import; never bundle it.
  external: ['ws'],
  plugins: [protocolPure],
  logLevel: 'silent',
};

/**
 * esbuild options of the package's main entry: readable (not minified), platform-neutral (it
 * imports no `node:` module, so browser bundlers can take it too), protocol code inlined.
 */
export const nodeOptions = {
  entryPoints: [ENTRY],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: ['es2022'],
  external: ['ws'],
  plugins: [protocolPure],
  legalComments: 'none',
  logLevel: 'silent',
};

/** Builds the browser bundle and returns its text; writes it to dist/ unless `write` is false. */
export async function bundleBrowser({ write = true } = {}) {
  const result = await build({ ...browserOptions, write: false, outfile: OUTFILE });
  const file = result.outputFiles?.[0];
  if (!file) throw new Error('esbuild produced no output');
  if (write) {
    mkdirSync(DIST, { recursive: true });
    writeFileSync(OUTFILE, file.text);
  }
  return file.text;
}

/** tsc declarations into dist/, then the protocol's declarations beside them. */
function declarations() {
  const require = createRequire(import.meta.url);
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--emitDeclarationOnly'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status})`);
  const protocolDist = PROTOCOL_DIR;
  const target = join(DIST, 'protocol');
  mkdirSync(target, { recursive: true });
  for (const f of readdirSync(protocolDist))
    if (f.endsWith('.d.ts')) copyFileSync(join(protocolDist, f), join(target, f));
  for (const f of readdirSync(DIST)) {
    if (!f.endsWith('.d.ts')) continue;
    const path = join(DIST, f);
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.replaceAll(/(["'])@herald\/protocol\1/g, '$1./protocol/index.js$1'));
  }
}

/** The whole build: a clean dist/ with the main entry, declarations and the browser bundle. */
export async function buildAll() {
  rmSync(DIST, { recursive: true, force: true });
  declarations();
  await build({ ...nodeOptions, outfile: NODE_OUTFILE });
  for (const [name, entry] of Object.entries(EXTRA_ENTRIES))
    await build({ ...nodeOptions, entryPoints: [entry], outfile: join(DIST, `${name}.js`) });
  return bundleBrowser();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { gzipSync } = await import('node:zlib');
  const text = await buildAll();
  const gz = gzipSync(text, { level: 9 }).length;
  const main = readFileSync(NODE_OUTFILE, 'utf8').length;
  console.log(
    `dist/index.js: ${main} bytes; dist/herald.browser.js: ${text.length} bytes, ${gz} bytes gzipped (budget ${GZIP_BUDGET})`,
  );
}
