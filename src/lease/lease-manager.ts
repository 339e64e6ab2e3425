import type { Database } from '../db/database.js';
import type { ResolvedOptions } from '../options.js';
import type { Lease, LeaseOptions, TryLeaseOptions } from '../types.js';
import type { AcquiredLease, AdoptOptions } from './acquired.js';

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

  /**
   * Wraps leases that another statement (claiming) just acquired as handles, tracked, renewed
   * and released like any other lease of this instance.
   */
  adopt(_acquired: AcquiredLease[], _options: AdoptOptions): Lease[] {
    throw new Error('not implemented yet');
  }

  async close(): Promise<void> {}
}
