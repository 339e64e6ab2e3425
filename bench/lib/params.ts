/** How much of everything a run does: `--quick` (under two minutes) or the full run. */
export interface Params {
  quick: boolean;
  /** Uncontended acquire + release: rounds per subject, each round's length. */
  rounds: number;
  roundMs: number;
  warmupMs: number;
  /** Contended hand-off: rounds per subject and their length. */
  handoffRounds: number;
  handoffRoundMs: number;
  /** Claiming: jobs per drain, drains per contender, pickup-latency samples. */
  jobs: number;
  claimPasses: number;
  pickupSamples: number;
  /** Expired rows the reaper removes; live rows in the "full table" of the scale scenario. */
  expiredRows: number;
  liveRows: number;
  /** Leases held with autoRenew, and how long their renewals are watched. */
  renewLeases: number;
  renewWatchMs: number;
}

export function params(quick: boolean): Params {
  return quick
    ? {
        quick,
        rounds: 3,
        roundMs: 300,
        warmupMs: 150,
        handoffRounds: 3,
        handoffRoundMs: 800,
        jobs: 20_000,
        claimPasses: 1,
        pickupSamples: 100,
        expiredRows: 200_000,
        liveRows: 100_000,
        renewLeases: 2_000,
        renewWatchMs: 3_000,
      }
    : {
        quick,
        rounds: 7,
        roundMs: 800,
        warmupMs: 300,
        handoffRounds: 5,
        handoffRoundMs: 2_000,
        jobs: 20_000,
        claimPasses: 3,
        pickupSamples: 300,
        expiredRows: 1_000_000,
        liveRows: 1_000_000,
        renewLeases: 10_000,
        renewWatchMs: 6_000,
      };
}
