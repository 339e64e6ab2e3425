import * as hdr from 'hdr-histogram-js';

/** Latencies are kept in microseconds, from 1 µs up to 10 minutes, to 3 significant digits. */
const SETTINGS = {
  lowestDiscernibleValue: 1,
  highestTrackableValue: 600_000_000,
  numberOfSignificantValueDigits: 3 as const,
};

/**
 * An HDR histogram of latencies in milliseconds. HDR keeps p99 exact to 0.1 % whatever the
 * number of samples, and histograms from worker processes merge without losing the tail.
 */
export class Latencies {
  readonly #histogram: hdr.Histogram;

  constructor(encoded?: string) {
    this.#histogram = encoded
      ? hdr.decodeFromCompressedBase64(encoded, 32, false)
      : hdr.build({ ...SETTINGS, bitBucketSize: 32 });
  }

  /** Records one latency, in milliseconds. */
  record(ms: number): void {
    this.#histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  add(other: Latencies): void {
    this.#histogram.add(other.#histogram);
  }

  get count(): number {
    return this.#histogram.totalCount;
  }

  /** The latency at `percentile` (0–100), in milliseconds; NaN when nothing was recorded. */
  at(percentile: number): number {
    return this.count === 0 ? Number.NaN : this.#histogram.getValueAtPercentile(percentile) / 1000;
  }

  /** A compact string, for sending a histogram from a worker process to the parent. */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.#histogram);
  }
}
