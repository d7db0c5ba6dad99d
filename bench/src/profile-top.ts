/**
 * `node bench/dist/profile-top.js <file.cpuprofile>... [--top N] [--busiest S]`: self time per
 * function of V8 CPU profiles (from `node --cpu-prof`, e.g. `run.js --cpu-prof <dir>`), summed
 * over the files. `--busiest S` counts only the S seconds of each profile with the most non-idle
 * samples (the broadcast phase of a scenario, without start-up and connects); with `--of F`,
 * the S seconds with the most self time in functions named F (e.g. `offer`, the node's delivery).
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
const busiestAt = args.indexOf('--busiest');
const busiestUs = busiestAt >= 0 ? Number(args[busiestAt + 1]) * 1e6 : 0;
const ofAt = args.indexOf('--of');
const of = ofAt >= 0 ? args[ofAt + 1] : undefined;
const files = args.filter(
  (a, i) =>
    a !== '--top' &&
    a !== '--busiest' &&
    a !== '--of' &&
    (ofAt < 0 || i !== ofAt + 1) &&
    (topAt < 0 || i !== topAt + 1) &&
    (busiestAt < 0 || i !== busiestAt + 1),
);
if (files.length === 0) {
  console.error('usage: profile-top.js <file.cpuprofile>... [--top N]');
  process.exit(2);
}

const self = new Map<string, number>();
let total = 0;
for (const file of files) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const [from, to] = busiestUs > 0 ? busiest(p, byId, busiestUs) : [0, Number.POSITIVE_INFINITY];
  let t = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from || t > to) return;
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
/** The window of `len` µs (from the profile's start) holding the most non-idle sample time. */
function busiest(p: Profile, byId: Map<number, ProfileNode>, len: number): [number, number] {
  const times: number[] = [];
  const busy: number[] = [];
  let t = 0;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    times.push(t);
    const fn = byId.get(id)?.callFrame.functionName;
    const counts = of === undefined ? fn !== '(idle)' : fn === of;
    busy.push(counts ? (p.timeDeltas[i] ?? 0) : 0);
  });
  let best = 0;
  let bestAt = 0;
  let sum = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    sum += busy[hi]!;
    while (times[hi]! - times[lo]! > len) sum -= busy[lo++]!;
    if (sum > best) {
      best = sum;
      bestAt = times[lo]!;
    }
  }
  return [bestAt, bestAt + len];
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
