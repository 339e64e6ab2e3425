// The package from CommonJS: the same calls through require().
const assert = require('node:assert/strict');
const { createPgFence, isLockError } = require('pgfence');

async function main() {
  const fence = createPgFence({
    connectionString: process.env.PACK_URL,
    schema: process.env.PACK_SCHEMA,
  });
  try {
    await fence.migrate();
    const held = await fence.tryLease('pack:cjs', { ttlMs: 10_000 });
    assert.ok(held);
    assert.equal(await fence.tryLease('pack:cjs'), null);
    await held.release();
    await assert.rejects(held.release(), (err) => isLockError(err, 'ALREADY_RELEASED'));
    console.log(`    CommonJS: lease token ${held.token}, double release refused`);
  } finally {
    await fence.close();
  }
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
