import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  resolveOptions,
  validateSchemaName,
  validateTtl,
  validateWait,
} from '../../src/options.js';

const pool = new pg.Pool();

describe('resolveOptions', () => {
  it('fills in the documented defaults and freezes the result', () => {
    const options = resolveOptions({ pool });
    expect(options.schema).toBe('pgfence');
    expect(options.ttlMs).toBe(30_000);
    expect(options.waitMs).toBe(30_000);
    expect(options.owner).toMatch(/^.+:\d+:[0-9a-f]{8}$/);
    expect(Object.isFrozen(options)).toBe(true);
  });

  it('gives each instance its own default owner', () => {
    expect(resolveOptions({ pool }).owner).not.toBe(resolveOptions({ pool }).owner);
  });

  it('needs exactly one of pool and connectionString', () => {
    // The compiler refuses both (see test/types/create-pg-fence.ts); JavaScript callers get an error.
    // @ts-expect-error -- no connection
    expect(() => resolveOptions({})).toThrow(InvalidArgumentError);
    // @ts-expect-error -- two connections
    expect(() => resolveOptions({ pool, connectionString: 'postgres://x' })).toThrow(/exactly one/);
    expect(() => resolveOptions({ connectionString: '' })).toThrow(InvalidArgumentError);
  });

  it('refuses unknown options, so a typo is not silently ignored', () => {
    expect(() => resolveOptions({ pool, ttl: 5 } as never)).toThrow(
      /unknown createPgFence option "ttl"/,
    );
  });

  it('refuses out-of-range numbers with typed errors', () => {
    for (const bad of [
      { ttlMs: 0 },
      { ttlMs: -1 },
      { ttlMs: Number.NaN },
      { ttlMs: Infinity },
      { ttlMs: 10 ** 15 },
      { waitMs: -1 },
      { waitMs: Number.NaN },
      { poolSize: 0 },
      { advisorySessions: 1.5 },
      { renewFraction: 1 },
      { safetyMarginMs: 40_000 },
      { owner: '' },
    ]) {
      let caught: unknown;
      try {
        resolveOptions({ pool, ...bad });
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(bad)).toBeInstanceOf(InvalidArgumentError);
      expect((caught as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('derives the default lock-delay from the liveness interval, and takes 0 to turn it off', () => {
    // A silent session dies at most two liveness intervals after its server went quiet; the
    // default adds half an interval of margin.
    expect(resolveOptions({ pool }).lockDelayMs).toBe(5_000);
    expect(resolveOptions({ pool, livenessIntervalMs: 500 }).lockDelayMs).toBe(1_250);
    expect(resolveOptions({ pool, livenessIntervalMs: 500, lockDelayMs: 0 }).lockDelayMs).toBe(0);
    expect(resolveOptions({ pool, lockDelayMs: 12_345.5 }).lockDelayMs).toBe(12_345.5);
    for (const bad of [-1, Number.NaN, Infinity, 3_600_001, '5000', null]) {
      expect(() => resolveOptions({ pool, lockDelayMs: bad as never }), String(bad)).toThrow(
        /"lockDelayMs" must be 0 \(off\) or a number of milliseconds up to 3600000/,
      );
    }
  });

  it('accepts waitMs of 0 and Infinity', () => {
    expect(resolveOptions({ pool, waitMs: 0 }).waitMs).toBe(0);
    expect(resolveOptions({ pool, waitMs: Infinity }).waitMs).toBe(Infinity);
  });
});

describe('validators', () => {
  it('accepts plain lower-case identifiers as schema names only', () => {
    expect(validateSchemaName('pgfence')).toBe('pgfence');
    expect(validateSchemaName('_a1')).toBe('_a1');
    for (const bad of ['Pg', 'a-b', 'a b', '"a"', '1a', '', 'a'.repeat(49), null]) {
      expect(() => validateSchemaName(bad)).toThrow(InvalidArgumentError);
    }
  });

  it('validates TTLs and waits', () => {
    expect(validateTtl(1)).toBe(1);
    expect(() => validateTtl('5' as never)).toThrow(/ttlMs/);
    expect(validateWait(0)).toBe(0);
    expect(() => validateWait(-0.5)).toThrow(/waitMs/);
  });
});
