// The pgfence command's entry point (bin/pgfence.js loads the built copy of this module).
// No top-level await: the module is also built as CommonJS.
import { runCli } from './program.js';

void runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`pgfence: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
