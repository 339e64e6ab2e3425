// One process that migrates a schema: used to race several migrators against each other.
import { createPgFence } from '../../../src/index.js';

const [url, schema] = process.argv.slice(2);
const fence = createPgFence({ connectionString: url!, schema: schema! });
try {
  const ran = await fence.migrate();
  process.stdout.write(JSON.stringify({ ran: ran.map((m) => m.name) }) + '\n');
} finally {
  await fence.close();
}
