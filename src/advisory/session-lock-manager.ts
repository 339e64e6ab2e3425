import type { Database } from '../db/database.js';
import type { ResolvedOptions } from '../options.js';
import type { AdvisoryLock, LockOptions } from '../types.js';

/** Session advisory locks multiplexed over a few dedicated connections. @internal */
export class SessionLockManager {
  constructor(
    readonly db: Database,
    readonly options: ResolvedOptions,
  ) {}

  async lock(_key: string | bigint, _options?: LockOptions): Promise<AdvisoryLock> {
    throw new Error('not implemented yet');
  }

  async tryLock(_key: string | bigint): Promise<AdvisoryLock | null> {
    throw new Error('not implemented yet');
  }

  async withLock<T>(
    _key: string | bigint,
    _fn: (lock: AdvisoryLock) => Promise<T> | T,
    _options?: LockOptions,
  ): Promise<T> {
    throw new Error('not implemented yet');
  }

  /** Keys this process holds, by advisory lock id (for `inspect`). */
  heldKeys(): Map<bigint, string | bigint> {
    return new Map();
  }

  async close(): Promise<void> {}
}
