import { performance } from 'node:perf_hooks';
import { Latencies } from './histogram.js';
import { errorMessage, type Runner } from './variants.js';

/** What one round of one subject measured. */
export interface RoundResult {
  ops: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  latencies: Latencies;
}

/**
 * Runs `callers` concurrent loops of `runner.op` for `durationMs`, recording each cycle's
 * latency. A caller whose cycle fails stops (failures here are systematic: a missing part,
 * a lost connection), and the failure is reported with the round.
 */
export async function driveRound(
  runner: Runner,
  callers: number,
  durationMs: number,
): Promise<RoundResult> {
  const latencies = new Latencies();
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + durationMs;
  const loop = async (caller: number): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      let measured: number | void;
      try {
        measured = await runner.op(caller);
      } catch (error) {
        errors += 1;
        firstError ??= errorMessage(error);
        return;
      }
      latencies.record(typeof measured === 'number' ? measured : performance.now() - t0);
      ops += 1;
    }
  };
  await Promise.all(Array.from({ length: callers }, (_, i) => loop(i)));
  return { ops, errors, firstError, elapsedMs: performance.now() - start, latencies };
}

/** A round's result in a form that crosses process boundaries. */
export interface WireRound {
  ops: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  latencies: string;
}

export function toWire(r: RoundResult): WireRound {
  return { ...r, latencies: r.latencies.encode() };
}

export function fromWire(w: WireRound): RoundResult {
  return { ...w, latencies: new Latencies(w.latencies) };
}
