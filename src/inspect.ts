import type { SessionLockManager } from './advisory/session-lock-manager.js';
import type { Database } from './db/database.js';
import type { InspectOptions, Inspection } from './types.js';

/** Live leases and advisory holders. @internal */
export async function inspect(
  _db: Database,
  _advisory: SessionLockManager,
  _options?: InspectOptions,
): Promise<Inspection> {
  throw new Error('not implemented yet');
}
