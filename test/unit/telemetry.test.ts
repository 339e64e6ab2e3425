import { metrics } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClosedError,
  DatabaseError,
  InvalidArgumentError,
  LockTimeoutError,
  UnavailableError,
} from '../../src/errors.js';
import { Telemetry, outcomeOf } from '../../src/telemetry/telemetry.js';
import { resolveTelemetryOptions } from '../../src/telemetry/telemetry-options.js';

describe('telemetry', () => {
  afterEach(() => metrics.disable());

  it('maps an acquire error to its outcome', () => {
    expect(outcomeOf(new LockTimeoutError('k', 10), undefined)).toBe('timeout');
    expect(outcomeOf(new UnavailableError('down'), undefined)).toBe('unavailable');
    expect(outcomeOf(new ClosedError(), undefined)).toBe('aborted');
    expect(outcomeOf(new Error('why'), AbortSignal.abort())).toBe('aborted');
    expect(outcomeOf(new DatabaseError('bad', '42P01'), undefined)).toBe('error');
  });

  it('records nothing, and wraps nothing, without a provider', async () => {
    const telemetry = new Telemetry(resolveTelemetryOptions(undefined));
    await telemetry.pending;
    expect(telemetry.pending).toBeUndefined();
    expect(telemetry.active).toBe(false);
  });

  it('uses a global meter provider registered before it is made', async () => {
    metrics.setGlobalMeterProvider(new MeterProvider());
    const telemetry = new Telemetry(resolveTelemetryOptions({}));
    await telemetry.pending;
    expect(telemetry.active).toBe(true);
    const off = new Telemetry(resolveTelemetryOptions({ enabled: false }));
    expect(off.pending).toBeUndefined();
    expect(off.active).toBe(false);
  });

  it('refuses unknown or mistyped options', () => {
    expect(() => resolveTelemetryOptions({ includeKey: true })).toThrow(InvalidArgumentError);
    expect(() => resolveTelemetryOptions({ includeKeys: 'yes' })).toThrow(/boolean/);
    expect(() => resolveTelemetryOptions({ meterProvider: {} })).toThrow(/MeterProvider/);
    expect(() => resolveTelemetryOptions(5)).toThrow(/must be an object/);
  });
});
