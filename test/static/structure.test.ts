// The shape rules of the code base, checked on the sources (no build needed): no import circle
// across apps/ and packages/ (between files, and between workspaces), and no source file over
// 400 lines unless it says why near its top. `npx madge --circular --extensions ts apps packages`
// finds the same circles; this keeps the check in `npm test` without a download.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAX_LINES = 400;

/** Every workspace under apps/ and packages/: name -> its folder. */
function workspaces(): Map<string, string> {
  const out = new Map<string, string>();
  for (const top of ['apps', 'packages'])
    for (const d of readdirSync(path.join(ROOT, top))) {
      const pkg = path.join(ROOT, top, d, 'package.json');
      if (existsSync(pkg)) out.set(JSON.parse(readFileSync(pkg, 'utf8')).name, path.join(ROOT, top, d));
    }
  return out;
}

/** The non-test TypeScript sources of a workspace (its src/, recursively). */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.ts') && !n.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(path.join(dir, 'src'));
  return out;
}

/** Specifiers of `import`/`export ... from` and `import()`, type-only ones included. */
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function specifiers(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => (m[1] ?? m[2]) as string);
}

function cycles(g: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of g.keys()) if (!state.has(n)) visit(n);
  return found;
}

const ws = workspaces();
const files = [...ws.values()].flatMap(sources);

describe('code structure', () => {
  it('finds the workspaces and their sources', () => {
    expect(ws.size).toBeGreaterThanOrEqual(9);
    expect(files.length).toBeGreaterThan(80);
  });

  it('has no import circle between source files', () => {
    const g = new Map<string, string[]>();
    for (const f of files) {
      const deps: string[] = [];
      for (const s of specifiers(f)) {
        if (!s.startsWith('.')) continue;
        const target = path.resolve(path.dirname(f), s).replace(/\.js$/, '.ts');
        deps.push(existsSync(target) ? target : path.join(target.replace(/\.ts$/, ''), 'index.ts'));
      }
      g.set(f, deps);
    }
    const rel = (p: string) => path.relative(ROOT, p);
    expect(cycles(g).map((c) => c.map(rel).join(' -> '))).toEqual([]);
  });

  it('has no circle between workspaces (runtime imports of apps/ and packages/ sources)', () => {
    const g = new Map<string, string[]>();
    for (const [name, dir] of ws) {
      const deps = new Set<string>();
      for (const f of sources(dir))
        for (const s of specifiers(f)) {
          const dep = s.startsWith('@herald/') ? s.split('/').slice(0, 2).join('/') : undefined;
          if (dep && dep !== name && ws.has(dep)) deps.add(dep);
        }
      g.set(name, [...deps]);
    }
    expect(cycles(g).map((c) => c.join(' -> '))).toEqual([]);
  });

  it(`has no source file over ${MAX_LINES} lines without a comment near its top saying why`, () => {
    const long = files
      .map((f) => ({ f, text: readFileSync(f, 'utf8') }))
      .filter(({ text }) => text.split('\n').length > MAX_LINES)
      .filter(({ text }) => !/over 400 lines/i.test(text.split('\n').slice(0, 15).join('\n')))
      .map(({ f }) => path.relative(ROOT, f));
    expect(long, 'explain in a comment near the top ("Over 400 lines because ...") or split it').toEqual([]);
  });
});
