// One of the demo's worker processes, started by worker-pool.ts (not for direct use): its
// settings come in the environment, which `ps` does not show (the URL carries a password).
import { WORKER_CONFIG_ENV, type WorkerConfig } from './messages.js';
import { runDemoWorker } from './worker.js';

const config = process.env[WORKER_CONFIG_ENV];
if (!config) {
  process.stderr.write('worker-main.ts is started by the demo only\n');
  process.exit(2);
}
runDemoWorker(JSON.parse(config) as WorkerConfig).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
