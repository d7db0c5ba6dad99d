/**
 * Preloaded into the benchmark's Node server processes (Herald's and the Socket.IO peer's) with
 * `NODE_OPTIONS=--import=<this file>`: a full garbage collection on SIGUSR2, so the idle scenario
 * can read the memory the connections hold apart from garbage V8 has not collected yet
 * (`RunningSystem.gc`). Nothing else changes in the process.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
process.on('SIGUSR2', () => gc());
