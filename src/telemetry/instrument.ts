import type { PgFence, ReaperOptions } from '../types.js';
import type { Telemetry } from './telemetry.js';

/**
 * The façade with acquire, claim and reap measured. Only the public calls are wrapped here;
 * what happens inside (renewals, losses, releases, sessions) is reported by the parts. A
 * method this does not know is passed through unchanged.
 * @internal
 */
export function instrument(fence: PgFence, telemetry: Telemetry): PgFence {
  const signalOf = (options: unknown): AbortSignal | undefined => {
    const signal = (options as { signal?: unknown } | undefined)?.signal;
    return signal instanceof AbortSignal ? signal : undefined;
  };
  const startTimed = performance.now.bind(performance);
  const wrapped: PgFence = {
    ...fence,
    lock: (key, options) =>
      telemetry.acquire('advisory', key, signalOf(options), () => fence.lock(key, options)),
    tryLock: (key, options) =>
      telemetry.acquire('advisory', key, undefined, () => fence.tryLock(key, options)),
    withLock: (key, fn, options) =>
      typeof fn !== 'function'
        ? fence.withLock(key, fn, options)
        : telemetry.acquireAround('advisory', key, signalOf(options), (granted) =>
            fence.withLock(key, (lock) => (granted(lock), fn(lock)), options),
          ),
    lease: (key, options) =>
      telemetry.acquire('lease', key, signalOf(options), () => fence.lease(key, options)),
    tryLease: (key, options) =>
      telemetry.acquire('lease', key, undefined, () => fence.tryLease(key, options)),
    withLease: (key, fn, options) =>
      typeof fn !== 'function'
        ? fence.withLease(key, fn, options)
        : telemetry.acquireAround('lease', key, signalOf(options), (granted) =>
            fence.withLease(key, (lease) => (granted(lease), fn(lease)), options),
          ),
    claim: (options) => telemetry.claim(() => fence.claim(options)),
    reap: async (options) => {
      const started = startTimed();
      const deleted = await fence.reap(options);
      telemetry.reaped({ deleted, durationMs: startTimed() - started });
      return deleted;
    },
    startReaper: (options) => fence.startReaper(reportingPasses(options, telemetry)),
    [Symbol.asyncDispose]: () => wrapped.close(),
  };
  return wrapped;
}

/** The reaper's options with its pass report copied to telemetry; bad options pass unchanged. */
function reportingPasses(
  options: ReaperOptions | undefined,
  telemetry: Telemetry,
): ReaperOptions | undefined {
  if (options !== undefined && (options === null || typeof options !== 'object')) return options;
  const onPass = options?.onPass;
  if (onPass !== undefined && typeof onPass !== 'function') return options;
  return {
    ...options,
    onPass: (pass) => {
      telemetry.reaped(pass);
      onPass?.(pass);
    },
  };
}
