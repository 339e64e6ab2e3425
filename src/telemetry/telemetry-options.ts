import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import { InvalidArgumentError } from '../errors.js';
import { refuseUnknownOptions } from '../util/known-options.js';

/**
 * A meter provider, as `@opentelemetry/api` defines it. Structural, so that pgfence's typings
 * do not need that optional package installed.
 */
export interface MeterProviderLike {
  getMeter(name: string, version?: string, options?: object): unknown;
}

/** A tracer provider, as `@opentelemetry/api` defines it (structural, like `MeterProviderLike`). */
export interface TracerProviderLike {
  getTracer(name: string, version?: string, options?: object): unknown;
}

/** The `telemetry` option of `createPgFence`: OpenTelemetry metrics and spans. */
export interface TelemetryOptions {
  /**
   * Put lock keys in span attributes (`pgfence.lock.key`). Default false: keys may be
   * sensitive (customer ids, file names), so they stay out unless asked for. Metrics never
   * carry keys (one time series per key would be unbounded).
   */
  includeKeys?: boolean;
  /** The meter provider to use. Default: the global one of `@opentelemetry/api`, if any. */
  meterProvider?: MeterProviderLike;
  /** The tracer provider to use. Default: the global one of `@opentelemetry/api`, if any. */
  tracerProvider?: TracerProviderLike;
  /** Set false to turn telemetry off even when a global provider is registered. Default true. */
  enabled?: boolean;
}

/** `TelemetryOptions` after validation. @internal */
export interface ResolvedTelemetryOptions {
  readonly includeKeys: boolean;
  readonly meterProvider: MeterProvider | undefined;
  readonly tracerProvider: TracerProvider | undefined;
  readonly enabled: boolean;
}

const KNOWN = new Set(['includeKeys', 'meterProvider', 'tracerProvider', 'enabled']);

/** Validates the `telemetry` option; unknown fields are refused. @internal */
export function resolveTelemetryOptions(given: unknown): ResolvedTelemetryOptions {
  if (given === undefined) {
    return Object.freeze({
      includeKeys: false,
      meterProvider: undefined,
      tracerProvider: undefined,
      enabled: true,
    });
  }
  if (given === null || typeof given !== 'object') {
    throw new InvalidArgumentError(
      '"telemetry" must be an object: { includeKeys?, meterProvider?, tracerProvider?, enabled? }',
    );
  }
  refuseUnknownOptions(given, KNOWN, 'telemetry');
  const options = given as TelemetryOptions;
  for (const name of ['includeKeys', 'enabled'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') {
      throw new InvalidArgumentError(`"telemetry.${name}" must be a boolean`);
    }
  }
  if (
    options.meterProvider !== undefined &&
    typeof (options.meterProvider as Partial<MeterProvider>).getMeter !== 'function'
  ) {
    throw new InvalidArgumentError('"telemetry.meterProvider" must be a MeterProvider');
  }
  if (
    options.tracerProvider !== undefined &&
    typeof (options.tracerProvider as Partial<TracerProvider>).getTracer !== 'function'
  ) {
    throw new InvalidArgumentError('"telemetry.tracerProvider" must be a TracerProvider');
  }
  return Object.freeze({
    includeKeys: options.includeKeys ?? false,
    // Checked above to have the one method pgfence calls; typed as the real thing from here.
    meterProvider: options.meterProvider as MeterProvider | undefined,
    tracerProvider: options.tracerProvider as TracerProvider | undefined,
    enabled: options.enabled ?? true,
  });
}
