// Failover 1: quorum commit (ANY 1 (s1, s2)); every primary process SIGKILLed; the most
// advanced standby promoted; the proxy retargeted. Nothing acknowledged may be lost.
import { beforeAll, describe, expect, it } from 'vitest';
import { testUrl } from '../../support/database.js';
import {
  describeFigures,
  runScenario,
  type ScenarioFigures,
} from '../../support/replication/failover-scenario.js';
import { expectFencingHolds, expectNoAcknowledgedLoss } from './expectations.js';

describe('quorum commit, primary killed, most advanced standby promoted', () => {
  let f: ScenarioFigures;
  beforeAll(async () => {
    f = await runScenario({
      replication: 'quorum',
      sockets: 'reset',
      promote: 'most-advanced',
      logUrl: testUrl(),
    });
    console.log(describeFigures('quorum-kill', f));
  });

  expectFencingHolds(() => f);
  expectNoAcknowledgedLoss(() => f);

  it('resumed on the new primary', () => {
    expect(f.fence.acquisitionsAfter).toBeGreaterThan(0);
    expect(f.fence.resumeMs).not.toBeNull();
  });
});
