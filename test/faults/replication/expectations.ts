// The assertions every failover scenario makes (guarantee 10 and the ones fencing depends
// on), as separate tests so a report names exactly which promise broke.
import { expect, it } from 'vitest';
import type { ScenarioFigures } from '../../support/replication/failover-scenario.js';

/** Holds whatever replication lost. */
export function expectFencingHolds(figures: () => ScenarioFigures): void {
  it('issues no token twice', () => {
    const f = figures().fence;
    expect(f.acquisitionsBefore).toBeGreaterThan(50);
    expect({ tokens: f.tokensIssuedTwice, keyTokenPairs: f.keyTokenPairsTwice }).toEqual({
      tokens: 0,
      keyTokenPairs: 0,
    });
  });

  it('issues after the failover only tokens larger than every token before it', () => {
    const f = figures().fence;
    expect(f.acquisitionsAfter).toBeGreaterThan(0);
    expect(f.tokensNotLargerAfter).toBe(0);
    expect(BigInt(f.minTokenAfter) > BigInt(f.maxTokenBefore)).toBe(true);
  });

  it('accepts fenced writes in token order per key, from one holder per term', () => {
    const f = figures().fence;
    expect(f.fencedWrites).toBeGreaterThan(50);
    expect({
      outOfOrder: f.writesOutOfOrder,
      termsWithTwoWriters: f.termsWithTwoWriters,
      keysWithTwoWritersAfter: f.keysWithTwoWritersAfter,
    }).toEqual({ outOfOrder: 0, termsWithTwoWriters: 0, keysWithTwoWritersAfter: 0 });
  });

  it('grants no advisory lock twice', () => {
    const a = figures().advisory;
    expect(a.acquisitions).toBeGreaterThan(50);
    expect(a.overlaps).toBe(0);
  });

  it('settles every call within its bound', () => {
    const f = figures();
    expect(f.callsOverBound).toEqual([]);
    expect(f.workers.every((w) => w.stillPending.length === 0)).toBe(true);
  });

  it('never loses a lease silently: the holder of a lost lease learned it by its deadline', () => {
    const f = figures();
    const holder = f.workers.find((w) => w.role === 'holder')!;
    expect(holder.settled).toBe(true);
    // A lease counts as lost silently when its signal never aborted although it is gone.
    const silent = (holder.lostLeases ?? []).filter((l) => l.includes('held true'));
    expect(silent).toEqual([]);
    // The holder's TTL is 10 s: it must have known by then (plus the kill-to-log slack).
    if (f.fence.latestLossNoticedMs !== null) {
      expect(f.fence.latestLossNoticedMs).toBeLessThan(10_000 + 2_000);
    }
  });
}

/** Holds with quorum commit when the most advanced standby is promoted. */
export function expectNoAcknowledgedLoss(figures: () => ScenarioFigures): void {
  it('keeps every acknowledged lease and write', () => {
    const f = figures();
    expect(f.holderKept).toBe(30);
    expect(f.fence.leasesLostAtRelease).toBe(0);
    // Each of the 8 writing callers may have had one write recorded but not yet committed.
    expect(f.fence.writesMissingAfter).toBeLessThanOrEqual(8);
  });

  it('never lets two lease holders believe they hold one key', () => {
    const l = figures().leases;
    expect(l.acquisitions).toBeGreaterThan(50);
    expect(l.overlaps).toBe(0);
  });
}

/** A lossy failover must really have lost something, or the test proves nothing. */
export function expectLoss(figures: () => ScenarioFigures): void {
  it('really lost acknowledged commits (the scenario is lossy)', () => {
    expect(figures().fence.writesMissingAfter).toBeGreaterThan(8);
  });
}
