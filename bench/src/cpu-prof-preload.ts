/**
 * Preloaded with `NODE_OPTIONS=--import=<this file>` when the bench runs with `--cpu-prof <dir>`
 * (Node 20 refuses `--cpu-prof` in NODE_OPTIONS): profiles the whole process with the inspector and
 * writes `<dir>/CPU.<pid>.cpuprofile` when it exits (the apps exit through process.exit on SIGTERM).
 */
import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.HERALD_BENCH_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable', () => session.post('Profiler.start'));
  let written = false;
  process.on('exit', () => {
    if (written) return;
    written = true;
    // The in-thread inspector answers synchronously, so this works inside an 'exit' handler.
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `CPU.${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
