// Failover 2: quorum commit, but the old primary's host dies: its clients' sockets go silent
// (no reply, no reset) instead of closing; every primary process SIGKILLed; the most advanced
// standby promoted; the proxy retargeted. Holders on the dead primary learn nothing from their
// sockets: advisory locks must not be granted again before they must have noticed.
import { beforeAll, describe, expect, it } from 'vitest';
import { testUrl } from '../../support/database.js';
import {
  describeFigures,
  runScenario,
  type ScenarioFigures,
} from '../../support/replication/failover-scenario.js';
import { expectFencingHolds, expectNoAcknowledgedLoss } from './expectations.js';

describe('quorum commit, primary host gone silent, most advanced standby promoted', () => {
  let f: ScenarioFigures;
  beforeAll(async () => {
    f = await runScenario({
      replication: 'quorum',
      sockets: 'silent',
      promote: 'most-advanced',
      logUrl: testUrl(),
    });
    console.log(describeFigures('quorum-silent', f));
  });

  expectFencingHolds(() => f);
  expectNoAcknowledgedLoss(() => f);

  it('resumed on the new primary', () => {
    expect(f.fence.acquisitionsAfter).toBeGreaterThan(0);
  });
});
