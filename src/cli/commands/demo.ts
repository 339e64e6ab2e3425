import type { Command } from 'commander';
import { EXIT } from '../exit-codes.js';

const WHERE = `The demo is not part of the installed package (it would weigh on every install, and
it starts servers and worker processes of its own). It lives in the repository:

  git clone https://github.com/pgfence/pgfence && cd pgfence
  npm install && npm run demo            # on an embedded PostgreSQL
  npm run demo -- --url postgres://…     # or on a server of yours, in a schema it drops after
`;

/** `pgfence demo`: says where the demo went and how to run it; exits 1 (nothing was run). */
export function registerDemo(program: Command, done: (code: number) => void): void {
  program
    .command('demo')
    .description('how to run the demo, which lives in the repository (examples/demo/)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      process.stderr.write(WHERE);
      done(EXIT.FAILED);
    });
}
