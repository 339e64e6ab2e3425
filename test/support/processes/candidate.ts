// An election candidate (or observer): campaigns for `name` and, once elected, prints its term
// and holds it (auto-renewed) until killed; as an observer, prints every change of leader.
// argv[2]: JSON { url, schema, name, ttlMs, value, observe? }
import { createPgFence } from '../../../src/index.js';

const config = JSON.parse(process.argv[2]!) as {
  url: string;
  schema: string;
  name: string;
  ttlMs: number;
  value: string;
  observe?: boolean;
};
const fence = createPgFence({ connectionString: config.url, schema: config.schema });
const print = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');

if (config.observe) {
  print({ event: 'observing' });
  for await (const leader of fence.observe(config.name)) {
    const agrees = await fence.leader(config.name);
    print({
      event: 'leader',
      value: leader?.value ?? null,
      token: leader?.token.toString() ?? null,
      leaderNow: agrees?.token.toString() ?? null,
    });
  }
} else {
  print({ event: 'campaigning', pid: process.pid });
  const term = await fence.campaign(config.name, { value: config.value, ttlMs: config.ttlMs });
  print({ event: 'elected', value: config.value, token: term.token.toString(), pid: process.pid });
  term.signal.addEventListener('abort', () => print({ event: 'lost', value: config.value }));
  await new Promise(() => {});
}
