import type { ResolvedOptions } from '../options.js';
import type { XactLockOptions } from '../types.js';

/** `pg_advisory_xact_lock` inside the caller's transaction. @internal */
export async function xactLock(
  _options: ResolvedOptions,
  _trx: unknown,
  _key: string | bigint,
  _lockOptions?: XactLockOptions,
): Promise<void> {
  throw new Error('not implemented yet');
}
