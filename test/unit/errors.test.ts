// Errors from another copy of pgfence (its CommonJS build next to its ESM one, or two installed
// versions) are still recognised: `instanceof` by the registered brand and the class name,
// `isLockError` by the brand and code. The second copy here is the same source loaded again
// under another module id; scripts/test-pack.sh does the same with the built CJS and ESM files.
import { describe, expect, it } from 'vitest';
import * as one from '../../src/errors.js';
import { isLockError } from '../../src/error-brand.js';

type Errors = typeof one;

async function otherCopy(): Promise<Errors> {
  // A query string makes the module runner load the file again as a module of its own.
  const specifier = '../../src/errors.js?copy=2';
  const other = (await import(specifier)) as Errors;
  expect(other.LockError).not.toBe(one.LockError);
  return other;
}

describe('errors across copies of the package', () => {
  it('instanceof holds for the base class and the own class, both ways', async () => {
    const two = await otherCopy();
    const fromTwo = new two.LockLostError('k', 'gone');
    const fromOne = new one.LockLostError('k', 'gone');
    for (const [err, other] of [
      [fromTwo, one],
      [fromOne, two],
    ] as const) {
      expect(err instanceof other.LockError).toBe(true);
      expect(err instanceof other.LockLostError).toBe(true);
      expect(err instanceof other.LockTimeoutError).toBe(false);
      expect(err instanceof other.ClosedError).toBe(false);
      expect(err instanceof Error).toBe(true);
    }
    expect(new two.ClosedError() instanceof one.ClosedError).toBe(true);
    expect(new two.InvalidKeyError('', 'empty') instanceof one.InvalidArgumentError).toBe(false);
  });

  it('isLockError recognises either copy, and the code when one is given', async () => {
    const two = await otherCopy();
    const err = new two.LockTimeoutError('k', 10);
    expect(isLockError(err)).toBe(true);
    expect(isLockError(err, 'LOCK_TIMEOUT')).toBe(true);
    expect(isLockError(err, 'LOCK_LOST')).toBe(false);
  });

  it('refuses what is not a pgfence error, even with the same name and code', async () => {
    class LockLostError extends Error {
      code = 'LOCK_LOST';
    }
    const lookalike = new LockLostError('not ours');
    expect(lookalike instanceof one.LockLostError).toBe(false);
    expect(lookalike instanceof one.LockError).toBe(false);
    expect(isLockError(lookalike)).toBe(false);
    for (const value of [null, undefined, 'LOCK_LOST', 42, {}, { code: 'LOCK_LOST' }]) {
      expect(isLockError(value)).toBe(false);
      expect(value instanceof one.LockError).toBe(false);
    }
  });

  it('keeps the class name and code on the error', () => {
    const err = new one.LockTimeoutError('k', 10);
    expect(err.name).toBe('LockTimeoutError');
    expect(err.code).toBe('LOCK_TIMEOUT');
    // The brand sits on the prototype: nothing extra shows in the error's own properties.
    expect(Object.getOwnPropertySymbols(err)).toEqual([]);
  });
});
