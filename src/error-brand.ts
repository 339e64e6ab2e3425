import type { LockError, LockErrorCode } from './errors.js';

/**
 * The mark every pgfence error carries, under a registered symbol: the CommonJS and the ESM
 * build of the package (or two installed copies of it) each have their own error classes, and
 * the symbol is the one thing they share, so errors from one copy are recognised by the other.
 */
export const LOCK_ERROR_BRAND: unique symbol = Symbol.for('pgfence.LockError');

/**
 * Whether `value` is an error pgfence threw on purpose — from this copy of the package or any
 * other (its CommonJS and ESM builds, or two versions installed side by side) — and, if `code`
 * is given, whether it has that code. Unlike `instanceof`, it also narrows the type.
 *
 * @example
 * ```ts
 * try {
 *   await fence.lease('report', { waitMs: 1_000 });
 * } catch (err) {
 *   if (isLockError(err, 'LOCK_TIMEOUT')) console.log('busy:', err.message);
 *   else throw err;
 * }
 * ```
 */
export function isLockError(value: unknown, code?: LockErrorCode): value is LockError {
  if (typeof value !== 'object' || value === null) return false;
  if ((value as { [LOCK_ERROR_BRAND]?: unknown })[LOCK_ERROR_BRAND] !== true) return false;
  return code === undefined || (value as { code?: unknown }).code === code;
}

/**
 * `instanceof` for pgfence's error classes that also holds across copies: `value` is an instance
 * of `cls` if it is one by its prototype chain, or if it is a branded error from another copy
 * with a class of the same name in its chain (the build keeps class names).
 */
export function isInstanceAcrossCopies(
  cls: abstract new (...args: never[]) => unknown,
  value: unknown,
): boolean {
  if (Function.prototype[Symbol.hasInstance].call(cls, value)) return true;
  if (!isLockError(value)) return false;
  for (
    let p: unknown = Object.getPrototypeOf(value);
    p !== null && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    if ((p as { constructor?: { name?: unknown } }).constructor?.name === cls.name) return true;
  }
  return false;
}
