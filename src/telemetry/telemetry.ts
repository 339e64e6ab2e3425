import type {
  Attributes,
  Counter,
  Histogram,
  Span,
  Tracer,
  UpDownCounter,
} from '@opentelemetry/api';
import { isLockError } from '../error-brand.js';
import { loadOtelApi, type OtelModule } from './otel-api.js';
import {
  ATTR,
  HOLD_BUCKETS,
  METRIC,
  SECONDS_BUCKETS,
  SIZE_BUCKETS,
  SPAN,
  type AcquireOutcome,
  type LockKind,
  type LossReason,
} from './names.js';
import type { ResolvedTelemetryOptions } from './telemetry-options.js';

const SCOPE = 'pgfence';
/** Span status code ERROR of the API (a constant, so the API need not be loaded to name it). */
const STATUS_ERROR = 2;

interface Instruments {
  acquireDuration: Histogram;
  leaseHeld: UpDownCounter;
  leaseHoldDuration: Histogram;
  renewals: Counter;
  renewalDuration: Histogram;
  renewalFailures: Counter;
  losses: Counter;
  reaperPasses: Counter;
  reaperDeleted: Counter;
  reaperPassDuration: Histogram;
  claimBatches: Counter;
  claimBatchSize: Histogram;
  advisorySessions: UpDownCounter;
}

/** What a renewal statement (or its retries) answered: per-term expiries and busy terms. */
interface RenewAnswer {
  expiresAt: Map<string, Date>;
  busy: Set<string>;
}

/**
 * OpenTelemetry metrics and spans for one PgFence. The parts call its hooks where an outcome
 * is decided; each hook returns at once when no meter or tracer provider is set. The API is
 * loaded once, lazily (`pending` until then); a provider registered globally after that is
 * not seen — register it before `createPgFence`, or pass it in the `telemetry` option.
 * @internal
 */
export class Telemetry {
  readonly includeKeys: boolean;
  #metrics: Instruments | undefined;
  #tracer: Tracer | undefined;
  #pending: Promise<void> | undefined;
  /** When each lease now held was taken (performance.now()), for hold time and the held count. */
  readonly #heldSince = new WeakMap<object, number>();

  constructor(options: ResolvedTelemetryOptions) {
    this.includeKeys = options.includeKeys;
    if (!options.enabled) return;
    this.#pending = loadOtelApi().then((api) => {
      if (api) this.#bind(api, options);
      this.#pending = undefined;
    });
  }

  /** Settles once the API has been looked for; undefined after that (no await needed). */
  get pending(): Promise<void> | undefined {
    return this.#pending;
  }

  /** Metrics or spans are being recorded. */
  get active(): boolean {
    return this.#metrics !== undefined || this.#tracer !== undefined;
  }

  /**
   * Times an acquire: `run` resolves with the handle, or null when a try found the key held.
   * The span ends with the outcome and the token; the duration is recorded by kind and outcome.
   */
  acquire<T extends object | null>(
    kind: LockKind,
    key: unknown,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    // Nothing to record (the usual case): the call itself, without another promise around it.
    if (this.#pending === undefined && !this.active) {
      try {
        return run();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#timedAcquire(kind, key, signal, run);
  }

  async #timedAcquire<T extends object | null>(
    kind: LockKind,
    key: unknown,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    if (this.#pending) await this.#pending;
    if (!this.active) return run();
    const started = performance.now();
    const span = this.#span(SPAN.acquire, kind, key);
    try {
      const result = await run();
      this.#acquired(kind, started, result === null ? 'timeout' : 'acquired', span, result);
      return result;
    } catch (error) {
      this.#acquired(kind, started, outcomeOf(error, signal), span, null, error);
      throw error;
    }
  }

  /**
   * Like `acquire` for `withLease`/`withLock`: `run` gets a `granted` callback to call with the
   * handle before the caller's function runs; an error after that is the function's own.
   */
  async acquireAround<R>(
    kind: LockKind,
    key: unknown,
    signal: AbortSignal | undefined,
    run: (granted: (handle: object) => void) => Promise<R>,
  ): Promise<R> {
    if (this.#pending) await this.#pending;
    if (!this.active) return run(() => {});
    const started = performance.now();
    const span = this.#span(SPAN.acquire, kind, key);
    let done = false;
    try {
      return await run((handle) => {
        done = true;
        this.#acquired(kind, started, 'acquired', span, handle);
      });
    } catch (error) {
      if (!done) this.#acquired(kind, started, outcomeOf(error, signal), span, null, error);
      throw error;
    }
  }

  /** Wraps a release statement in a span. */
  async release(
    kind: LockKind,
    key: unknown,
    token: bigint | undefined,
    run: () => Promise<boolean>,
  ): Promise<boolean> {
    const tracer = this.#tracer;
    if (!tracer) return run();
    const span = this.#span(SPAN.release, kind, key, token);
    try {
      const released = await run();
      span?.setAttribute(ATTR.released, released);
      return released;
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span?.end();
    }
  }

  /** A lease began to be held (acquired, or adopted from a claim). */
  leaseHeld(handle: object): void {
    if (!this.#metrics) return;
    this.#heldSince.set(handle, performance.now());
    this.#metrics.leaseHeld.add(1);
  }

  /** A lease stopped being held (released or lost). */
  leaseEnded(handle: object): void {
    const since = this.#heldSince.get(handle);
    if (since === undefined || !this.#metrics) return;
    this.#heldSince.delete(handle);
    this.#metrics.leaseHeld.add(-1);
    this.#metrics.leaseHoldDuration.record((performance.now() - since) / 1_000);
  }

  /** Times a renewal of `count` leases (one statement and its retries); null = no answer. */
  async renewal<T extends RenewAnswer | null>(count: number, run: () => Promise<T>): Promise<T> {
    if (!this.active) return run();
    const started = performance.now();
    const span = this.#tracer?.startSpan(SPAN.renew, {
      attributes: { [ATTR.kind]: 'lease', [ATTR.leaseCount]: count },
    });
    const m = this.#metrics;
    try {
      const answer = await run();
      if (answer === null) {
        m?.renewalFailures.add(count);
        span?.setStatus({ code: STATUS_ERROR, message: 'no answer before the deadline' });
      } else {
        const renewed = answer.expiresAt.size;
        const busy = answer.busy.size;
        const gone = Math.max(0, count - renewed - busy);
        m?.renewalDuration.record((performance.now() - started) / 1_000);
        if (renewed > 0) m?.renewals.add(renewed, { [ATTR.renewalOutcome]: 'renewed' });
        if (busy > 0) m?.renewals.add(busy, { [ATTR.renewalOutcome]: 'busy' });
        if (gone > 0) m?.renewals.add(gone, { [ATTR.renewalOutcome]: 'gone' });
      }
      return answer;
    } catch (error) {
      m?.renewalFailures.add(count);
      failed(span, error);
      throw error;
    } finally {
      span?.end();
    }
  }

  /** A held lock was lost. */
  lost(kind: LockKind, reason: LossReason): void {
    this.#metrics?.losses.add(1, { [ATTR.kind]: kind, [ATTR.lossReason]: reason });
  }

  /** One reaper pass (`reap()` or a `startReaper` loop) finished. */
  reaped(pass: { deleted: number; durationMs: number }): void {
    const m = this.#metrics;
    if (!m) return;
    m.reaperPasses.add(1);
    m.reaperDeleted.add(pass.deleted);
    m.reaperPassDuration.record(pass.durationMs / 1_000);
  }

  /** Times a claim and records its batch size. */
  async claim<T extends readonly unknown[]>(run: () => Promise<T>): Promise<T> {
    if (this.#pending) await this.#pending;
    if (!this.active) return run();
    const span = this.#tracer?.startSpan(SPAN.claim, { attributes: { [ATTR.kind]: 'lease' } });
    try {
      const leases = await run();
      this.#metrics?.claimBatches.add(1);
      this.#metrics?.claimBatchSize.record(leases.length);
      span?.setAttribute(ATTR.claimSize, leases.length);
      return leases;
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span?.end();
    }
  }

  /** An advisory session connection opened (+1) or ended (−1). */
  advisorySessions(delta: 1 | -1): void {
    this.#metrics?.advisorySessions.add(delta);
  }

  #acquired(
    kind: LockKind,
    started: number,
    outcome: AcquireOutcome,
    span: Span | undefined,
    handle: object | null,
    error?: unknown,
  ): void {
    this.#metrics?.acquireDuration.record((performance.now() - started) / 1_000, {
      [ATTR.kind]: kind,
      [ATTR.outcome]: outcome,
    });
    if (!span) return;
    span.setAttribute(ATTR.outcome, outcome);
    const token = (handle as { token?: unknown } | null)?.token;
    if (typeof token === 'bigint') span.setAttribute(ATTR.token, token.toString());
    if (outcome === 'unavailable' || outcome === 'error') failed(span, error);
    span.end();
  }

  #span(name: string, kind: LockKind, key: unknown, token?: bigint): Span | undefined {
    if (!this.#tracer) return undefined;
    const attributes: Attributes = { [ATTR.kind]: kind };
    if (this.includeKeys && (typeof key === 'string' || typeof key === 'bigint')) {
      attributes[ATTR.key] = String(key);
    }
    if (token !== undefined) attributes[ATTR.token] = token.toString();
    return this.#tracer.startSpan(name, { attributes });
  }

  #bind(api: OtelModule, options: ResolvedTelemetryOptions): void {
    const meter = (options.meterProvider ?? api.metrics.getMeterProvider()).getMeter(SCOPE);
    // The API hands out one shared no-op meter while no provider is registered: skip it all.
    if (meter !== api.createNoopMeter()) this.#metrics = instruments(meter);
    const tracer = (options.tracerProvider ?? api.trace.getTracerProvider()).getTracer(SCOPE);
    // Without a registered provider the global one answers with a proxy of a no-op tracer.
    if (options.tracerProvider !== undefined || !(tracer instanceof api.ProxyTracer)) {
      this.#tracer = tracer;
    }
  }
}

function instruments(meter: ReturnType<OtelModule['metrics']['getMeter']>): Instruments {
  const seconds = (name: string, description: string, bounds = SECONDS_BUCKETS): Histogram =>
    meter.createHistogram(name, {
      description,
      unit: 's',
      advice: { explicitBucketBoundaries: bounds },
    });
  return {
    acquireDuration: seconds(METRIC.acquireDuration, 'Time from asking for a lock to the outcome'),
    leaseHeld: meter.createUpDownCounter(METRIC.leaseHeld, {
      description: 'Leases this process holds',
      unit: '{lease}',
    }),
    leaseHoldDuration: seconds(
      METRIC.leaseHoldDuration,
      'How long leases were held, until released or lost',
      HOLD_BUCKETS,
    ),
    renewals: meter.createCounter(METRIC.renewals, {
      description: 'Lease renewals answered, by outcome',
      unit: '{lease}',
    }),
    renewalDuration: seconds(METRIC.renewalDuration, 'Time a renewal statement took'),
    renewalFailures: meter.createCounter(METRIC.renewalFailures, {
      description: 'Lease renewals that got no answer (errors, no reply before the deadline)',
      unit: '{lease}',
    }),
    losses: meter.createCounter(METRIC.losses, {
      description: 'Held locks lost, by kind and reason',
      unit: '{lock}',
    }),
    reaperPasses: meter.createCounter(METRIC.reaperPasses, {
      description: 'Reaper passes completed',
      unit: '{pass}',
    }),
    reaperDeleted: meter.createCounter(METRIC.reaperDeleted, {
      description: 'Expired lease rows the reaper deleted',
      unit: '{row}',
    }),
    reaperPassDuration: seconds(METRIC.reaperPassDuration, 'Time a reaper pass took'),
    claimBatches: meter.createCounter(METRIC.claimBatches, {
      description: 'Claim calls completed',
      unit: '{batch}',
    }),
    claimBatchSize: meter.createHistogram(METRIC.claimBatchSize, {
      description: 'Leases a claim call returned',
      unit: '{lease}',
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    }),
    advisorySessions: meter.createUpDownCounter(METRIC.advisorySessions, {
      description: 'Advisory session connections open',
      unit: '{connection}',
    }),
  };
}

/** The outcome an acquire's error stands for. */
export function outcomeOf(error: unknown, signal: AbortSignal | undefined): AcquireOutcome {
  if (isLockError(error, 'LOCK_TIMEOUT')) return 'timeout';
  if (isLockError(error, 'UNAVAILABLE')) return 'unavailable';
  if (signal?.aborted || isLockError(error, 'CLOSED')) return 'aborted';
  if (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError')) {
    return 'aborted';
  }
  return 'error';
}

function failed(span: Span | undefined, error: unknown): void {
  if (!span) return;
  if (error instanceof Error) span.recordException(error);
  span.setStatus({
    code: STATUS_ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

/** A Telemetry that records nothing, for parts built without one (their own unit tests). @internal */
export const NO_TELEMETRY = new Telemetry({
  includeKeys: false,
  meterProvider: undefined,
  tracerProvider: undefined,
  enabled: false,
});
