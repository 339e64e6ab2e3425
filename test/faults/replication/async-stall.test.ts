// Failover 3: asynchronous replication; both standbys' streams stalled for 1.5 s just before
// every primary process is SIGKILLed; the most advanced standby promoted. Commits are lost:
// leases may go, but no token may be issued twice and fencing must hold.
import { beforeAll, describe, it, expect } from 'vitest';
import { testUrl } from '../../support/database.js';
import {
  describeFigures,
  runScenario,
  type ScenarioFigures,
} from '../../support/replication/failover-scenario.js';
import { expectFencingHolds, expectLoss } from './expectations.js';

describe('asynchronous replication stalled before the crash (lossy)', () => {
  let f: ScenarioFigures;
  beforeAll(async () => {
    f = await runScenario({
      replication: 'async',
      sockets: 'reset',
      stall: { standbys: 'both', ms: 1_500 },
      promote: 'most-advanced',
      logUrl: testUrl(),
    });
    console.log(describeFigures('async-stall', f));
  });

  expectLoss(() => f);
  expectFencingHolds(() => f);

  it('resumed on the new primary', () => {
    expect(f.fence.acquisitionsAfter).toBeGreaterThan(0);
  });
});
