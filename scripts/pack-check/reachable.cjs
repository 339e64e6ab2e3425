// Exit 0 when a PostgreSQL answers at the URL within 3 s.
const pg = require('pg');
const client = new pg.Client({ connectionString: process.argv[2], connectionTimeoutMillis: 3000 });
client.connect().then(
  () => client.end().then(() => process.exit(0)),
  () => process.exit(1),
);
