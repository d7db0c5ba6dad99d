/**
 * `node bench/dist/profile-top.js <file.cpuprofile>... [--top N]`: self time per function of V8
 * CPU profiles (from `node --cpu-prof`, e.g. `run.js --cpu-prof <dir>`), summed over the files.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
const files = args.filter((a, i) => a !== '--top' && (topAt < 0 || i !== topAt + 1));
if (files.length === 0) {
  console.error('usage: profile-top.js <file.cpuprofile>... [--top N]');
  process.exit(2);
}

const self = new Map<string, number>();
let total = 0;
for (const file of files) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const n = byId.get(id);
    if (!n) return;
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url
      ? `${url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '~/')}:${lineNumber + 1}`
      : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
}
const idle = ['(idle)', '(program)', '(garbage collector)'];
const busy = [...self].filter(([k]) => k !== '(idle)').reduce((s, [, v]) => s + v, 0);
console.log(
  `${files.length} profile(s), ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle`,
);
console.log('| self ms | % of busy | function |\n| ---: | ---: | --- |');
for (const [k, v] of [...self]
  .filter(([k]) => k !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)) {
  const label = idle.includes(k) ? k : k.replace(path.resolve('.') + path.sep, '');
  console.log(`| ${(v / 1000).toFixed(0)} | ${((100 * v) / busy).toFixed(1)}% | \`${label}\` |`);
}
