// Loads the package's ESM and CommonJS builds in one process: two sets of error classes, and an
// error of either copy must be `instanceof` the other's classes (and only the right ones).
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const esm = await import('pgfence');
const cjs = createRequire(import.meta.url)('pgfence');
assert.notEqual(esm.LockError, cjs.LockError, 'expected two copies of the error classes');
const classes = Object.keys(esm).filter((name) => /^[A-Z]\w*Error$/.test(name));
assert.ok(classes.length >= 10, `only ${classes.length} error classes exported`);
for (const [from, to] of [
  [esm, cjs],
  [cjs, esm],
]) {
  for (const name of classes) {
    const err = Object.create(from[name].prototype);
    assert.ok(err instanceof to[name], `${name} not recognised by the other copy`);
    assert.ok(err instanceof to.LockError, `${name} is not a LockError of the other copy`);
    assert.ok(to.isLockError(err), `isLockError refuses ${name} of the other copy`);
    for (const other of classes) {
      if (other === name || other === 'LockError' || from[other].prototype instanceof from[name])
        continue;
      if (from[name].prototype instanceof from[other]) continue;
      assert.ok(!(err instanceof to[other]), `${name} taken for ${other}`);
    }
  }
}
const timeout = new cjs.LockTimeoutError('k', 5);
assert.ok(esm.isLockError(timeout, 'LOCK_TIMEOUT') && !esm.isLockError(timeout, 'LOCK_LOST'));
assert.equal(timeout.name, 'LockTimeoutError');
console.log(`    ${classes.length} error classes recognised across the two copies`);
