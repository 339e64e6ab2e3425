import type { Database } from '../db/database.js';
import type { LeaseManager } from '../lease/lease-manager.js';
import type { ResolvedOptions } from '../options.js';
import type { ClaimOptions, Lease } from '../types.js';

/** SKIP LOCKED claiming over the caller's own table. @internal */
export class Claimer {
  constructor(
    readonly db: Database,
    readonly leases: LeaseManager,
    readonly options: ResolvedOptions,
  ) {}

  async claim(_options: ClaimOptions): Promise<Lease[]> {
    throw new Error('not implemented yet');
  }
}
