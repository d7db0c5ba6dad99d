#!/usr/bin/env node
// The browser bundle of the SDK: one minified ESM file, dist/herald.browser.js, for a
// <script type="module"> or an `import` from a page. Run by `npm run build`; the size test
// (test/bundle.test.ts) builds it in memory with the same options and checks its budget.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const ENTRY = fileURLToPath(new URL('../src/index.ts', import.meta.url));
export const OUTFILE = fileURLToPath(new URL('../dist/herald.browser.js', import.meta.url));
/** gzip budget of the bundle, in bytes. */
export const GZIP_BUDGET = 8 * 1024;

/** esbuild options of the browser bundle. */
export const browserOptions = {
  entryPoints: [ENTRY],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // ES2022 syntax, as evergreen browsers have had since 2022: class fields stay as written.
  target: ['es2022'],
  // Whitespace and names only. Syntax minification would fold the SDK's computed `import(specifier)`
  // of `ws` (Node 20 only) back into a literal `import("ws")`, which a bundler that consumes this
  // file would then try to resolve; it would save only ~30 bytes gzipped.
  minifyWhitespace: true,
  minifyIdentifiers: true,
  legalComments: 'none',
  // `ws` is only ever loaded in Node through a computed dynamic import; never bundle it.
  external: ['ws'],
  logLevel: 'silent',
};

/** Builds the bundle and returns its text; writes it to dist/ unless `write` is false. */
export async function bundleBrowser({ write = true } = {}) {
  const result = await build({ ...browserOptions, write: false, outfile: OUTFILE });
  const file = result.outputFiles?.[0];
  if (!file) throw new Error('esbuild produced no output');
  if (write) {
    mkdirSync(fileURLToPath(new URL('../dist/', import.meta.url)), { recursive: true });
    writeFileSync(OUTFILE, file.text);
  }
  return file.text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { gzipSync } = await import('node:zlib');
  const text = await bundleBrowser();
  const gz = gzipSync(text, { level: 9 }).length;
  console.log(`dist/herald.browser.js: ${text.length} bytes, ${gz} bytes gzipped (budget ${GZIP_BUDGET})`);
}
