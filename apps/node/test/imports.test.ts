import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

/** Relative specifiers of `import`/`export ... from` statements and `import()`, type-only ones included. */
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** The local import graph of apps/node/src: file -> files it imports. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of readdirSync(SRC).filter((n) => n.endsWith('.ts'))) {
    const text = readFileSync(path.join(SRC, f), 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2])!;
      deps.push(path.basename(spec).replace(/\.js$/, '.ts'));
    }
    g.set(f, deps);
  }
  return g;
}

/** Every cycle found by a depth-first walk, each as the path that closes it. */
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

describe('apps/node/src imports', () => {
  it('form no circle (type-only imports count too)', () => {
    const g = graph();
    expect(g.size).toBeGreaterThan(10);
    // Every relative import resolves to a file of src, so the walk sees the whole graph.
    for (const [f, deps] of g) for (const d of deps) expect(g.has(d), `${f} imports ${d}`).toBe(true);
    expect(cycles(g).map((c) => c.join(' > '))).toEqual([]);
  });

  it('the session knows nothing of WebSocket, the hub or the broker', () => {
    const g = graph();
    const reach = (from: string): Set<string> => {
      const seen = new Set<string>();
      const todo = [from];
      while (todo.length)
        for (const d of g.get(todo.pop()!) ?? []) if (!seen.has(d) && seen.add(d)) todo.push(d);
      return seen;
    };
    const session = reach('session.ts');
    for (const f of ['ws-transport.ts', 'wire.ts', 'hub.ts', 'broker.ts', 'node.ts'])
      expect(session.has(f), f).toBe(false);
    for (const f of ['session.ts', 'requests.ts', 'delivery.ts'])
      expect(readFileSync(path.join(SRC, f), 'utf8')).not.toMatch(/from 'ws'|@fastify\/websocket/);
  });

  it('the check itself finds a circle', () => {
    const g = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ]);
    expect(cycles(g)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
    expect(
      [...'import type { X } from \'./x.js\';\nexport { y } from "./y.js";'.matchAll(IMPORT)].length,
    ).toBe(2);
  });
});
