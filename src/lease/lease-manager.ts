import type { Database } from '../db/database.js';
import type { ResolvedOptions } from '../options.js';
import type { Lease, LeaseOptions, TryLeaseOptions } from '../types.js';

/** Acquires, renews and releases leases. @internal */
export class LeaseManager {
  constructor(
    readonly db: Database,
    readonly options: ResolvedOptions,
  ) {}

  async lease(_key: string, _options?: LeaseOptions): Promise<Lease> {
    throw new Error('not implemented yet');
  }

  async tryLease(_key: string, _options?: TryLeaseOptions): Promise<Lease | null> {
    throw new Error('not implemented yet');
  }

  async withLease<T>(
    _key: string,
    _fn: (lease: Lease) => Promise<T> | T,
    _options?: LeaseOptions,
  ): Promise<T> {
    throw new Error('not implemented yet');
  }

  async close(): Promise<void> {}
}
