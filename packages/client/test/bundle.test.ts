import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleBrowser, GZIP_BUDGET, OUTFILE } from '../scripts/bundle.mjs';

// The browser bundle, built in memory with the same options as `npm run build`.
let text: string;
beforeAll(async () => {
  text = await bundleBrowser({ write: false });
}, 30_000);

describe('browser bundle (dist/herald.browser.js)', () => {
  it(`is under ${GZIP_BUDGET} bytes gzipped`, () => {
    const gz = gzipSync(text, { level: 9 }).length;
    console.log(`herald.browser.js: ${text.length} bytes, ${gz} bytes gzipped`);
    expect(gz).toBeLessThan(GZIP_BUDGET);
  });

  it('imports nothing: no ws, no node: modules, no bare specifiers', () => {
    expect(text).not.toMatch(/\bimport\s*\(\s*["'`]/); // no literal dynamic import
    expect(text).not.toMatch(/\bfrom\s*["'`]/); // no static import
    expect(text).not.toMatch(/\brequire\s*\(/);
    expect(text).not.toMatch(/["'`]node:/);
  });

  it('is an ES module exporting the client', async () => {
    const mod = (await import(
      `data:text/javascript;base64,${Buffer.from(text).toString('base64')}`
    )) as Record<string, unknown>;
    for (const name of ['HeraldClient', 'LocalStorageCursorStorage', 'MemoryCursorStorage', 'HeraldError'])
      expect(typeof mod[name], name).toBe('function');
  });

  it('is what the build wrote to dist', () => {
    expect(existsSync(OUTFILE), `${OUTFILE} is missing: run npm run build`).toBe(true);
    expect(readFileSync(OUTFILE, 'utf8')).toBe(text);
  });
});
