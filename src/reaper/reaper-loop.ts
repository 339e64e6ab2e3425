import type { Database } from '../db/database.js';
import type { ResolvedOptions } from '../options.js';
import type { Reaper, ReaperOptions } from '../types.js';

/** The periodic reaper. @internal */
export class ReaperLoop implements Reaper {
  constructor(
    readonly db: Database,
    readonly options: ResolvedOptions,
    readonly reaperOptions: ReaperOptions | undefined,
    readonly onStopped: () => void,
  ) {}

  async stop(): Promise<void> {
    this.onStopped();
  }
}
