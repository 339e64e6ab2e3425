import type { Database } from '../db/database.js';
import type { ReapOptions } from '../types.js';

/** One reaper pass. @internal */
export async function reap(_db: Database, _options?: ReapOptions): Promise<number> {
  throw new Error('not implemented yet');
}
