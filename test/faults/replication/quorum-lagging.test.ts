// Failover 4: quorum commit (ANY 1 (s1, s2)), but s2's stream stalled for 1.5 s before the
// crash, so only s1 acknowledged the last commits — and s2, the lagging one, is promoted by
// mistake. Commits are lost: leases may go, but no token may be issued twice and fencing
// must hold.
import { beforeAll, describe, expect, it } from 'vitest';
import { testUrl } from '../../support/database.js';
import {
  describeFigures,
  runScenario,
  type ScenarioFigures,
} from '../../support/replication/failover-scenario.js';
import { expectFencingHolds, expectLoss } from './expectations.js';

describe('quorum commit with the lagging standby promoted (lossy)', () => {
  let f: ScenarioFigures;
  beforeAll(async () => {
    f = await runScenario({
      replication: 'quorum',
      sockets: 'reset',
      stall: { standbys: 's2', ms: 1_500 },
      promote: 'least-advanced',
      logUrl: testUrl(),
    });
    console.log(describeFigures('quorum-lagging', f));
  });

  expectLoss(() => f);
  expectFencingHolds(() => f);

  it('promoted the standby that was behind', () => {
    expect(f.promoted).toBe('s2');
  });
});
