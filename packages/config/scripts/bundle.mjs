#!/usr/bin/env node
// Bundles dist/index.js (after tsc) with TypeBox inlined. Every Herald process imports this
// package at start, and TypeBox is about 700 ES modules: importing the tsc output cost 690-730 ms
// of CPU per process, the bundle 220 ms (measured on the 2-core VM, Node 20, which has no module
// compile cache). A stack of 5 processes starts about 2 CPU-seconds sooner, and so does every
// system test that starts one. tsc still writes the declarations and the other files (table.js).
import { build } from 'esbuild';

await build({
  entryPoints: [new URL('../src/index.ts', import.meta.url).pathname],
  outfile: new URL('../dist/index.js', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // Small or shared: left to the package manager.
  external: ['env-schema', 'yaml', '@herald/protocol'],
  logLevel: 'warning',
});
