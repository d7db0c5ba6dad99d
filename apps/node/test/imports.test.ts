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

describe('apps/node/src imports', () => {
  // No import circle: test/static/structure.test.ts checks every file of apps/ and packages/.
  it('resolve to files of src (type-only imports count too)', () => {
    const g = graph();
    expect(g.size).toBeGreaterThan(10);
    // Every relative import resolves to a file of src, so the walk sees the whole graph.
    for (const [f, deps] of g) for (const d of deps) expect(g.has(d), `${f} imports ${d}`).toBe(true);
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
});
