import { ConfigError, loadConfig, workerSchema } from '@herald/config';
import { pino } from 'pino';
import { startWorkerApp, type WorkerConfig } from './app.js';

let cfg: WorkerConfig;
try {
  cfg = loadConfig(workerSchema);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // A plain message, not a stack trace: the operator has to fix the environment.
  console.error(`herald-worker: ${err.message}`);
  process.exit(1);
}

const log = pino({ name: 'herald-worker', level: cfg.HERALD_LOG_LEVEL });

process.on('unhandledRejection', (err) => {
  log.fatal({ err }, 'unhandled rejection');
  process.exit(1);
});

let app: Awaited<ReturnType<typeof startWorkerApp>>;
try {
  app = await startWorkerApp(cfg, log);
} catch (err) {
  log.fatal({ err }, 'fan-out worker could not start');
  process.exit(1);
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) {
      // A second signal: stop waiting. Running jobs stall and are resumed by another worker.
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping: finishing running fan-outs');
    app.close().then(
      (outcome) => {
        log.info({ outcome }, 'stopped');
        process.exit(outcome === 'closed' ? 0 : 1);
      },
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  });
}
