import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidKeyError } from '../../src/errors.js';
import { assertAboveMargin, marginFor, parseLeaseRequest } from '../../src/lease/lease-options.js';
import { resolveOptions } from '../../src/options.js';

const pool = new pg.Pool();
const defaults = resolveOptions({ pool, ttlMs: 20_000, waitMs: 7_000 });
const lease = { waits: true, autoRenew: false };
const tryLease = { waits: false, autoRenew: false };

describe('parseLeaseRequest', () => {
  it("fills in the PgFence's defaults and the call's own autoRenew default", () => {
    expect(parseLeaseRequest('k', undefined, defaults, lease)).toEqual({
      key: 'k',
      ttlMs: 20_000,
      waitMs: 7_000,
      autoRenew: false,
      signal: undefined,
      metadata: undefined,
      metadataJson: null,
      mode: 'exclusive',
      permits: null,
    });
    expect(parseLeaseRequest('k', {}, defaults, { waits: true, autoRenew: true }).autoRenew).toBe(
      true,
    );
  });

  it('keeps what the caller gave', () => {
    const signal = new AbortController().signal;
    const request = parseLeaseRequest(
      'k',
      { ttlMs: 5_000, waitMs: 0, autoRenew: true, signal, metadata: { job: 7 }, permits: 3 },
      defaults,
      lease,
    );
    expect(request).toMatchObject({ ttlMs: 5_000, waitMs: 0, autoRenew: true, permits: 3 });
    expect(request.signal).toBe(signal);
    expect(request.metadataJson).toBe('{"job":7}');
  });

  it('refuses an unknown option, and says when tryLease is given a waiting one', () => {
    expect(() => parseLeaseRequest('k', { ttl: 5 }, defaults, lease)).toThrow(
      'unknown lease option "ttl"',
    );
    expect(() => parseLeaseRequest('k', { waitMs: 5 }, defaults, tryLease)).toThrow(
      '"waitMs" does not apply to tryLease, which never waits',
    );
    expect(() => parseLeaseRequest('k', { signal: undefined }, defaults, tryLease)).toThrow(
      /"signal" does not apply to tryLease/,
    );
    expect(() =>
      parseLeaseRequest('k', { permits: 2 }, defaults, { ...lease, permits: false }),
    ).toThrow('"permits" does not apply to leaseAll');
  });

  it('refuses options that are not an object, and a bad key', () => {
    for (const raw of [null, 5, 'ttl', [1]]) {
      expect(() => parseLeaseRequest('k', raw, defaults, lease)).toThrow(
        'lease options must be an object',
      );
    }
    expect(() => parseLeaseRequest('', {}, defaults, lease)).toThrow(InvalidKeyError);
  });

  it('refuses a TTL its safety margin would use up', () => {
    // min(1 s, ttl / 10) is below any positive TTL: only a configured margin can reach it.
    const margined = resolveOptions({ pool, safetyMarginMs: 2_000 });
    expect(() => parseLeaseRequest('k', { ttlMs: 2_000 }, margined, lease)).toThrow(
      '"ttlMs" (2000) must be larger than the safety margin (2000 ms)',
    );
    expect(parseLeaseRequest('k', { ttlMs: 2_001 }, margined, lease).ttlMs).toBe(2_001);
  });

  it('refuses a bad autoRenew, permits with mode shared, and metadata that is not plain JSON', () => {
    expect(() => parseLeaseRequest('k', { autoRenew: 'yes' }, defaults, lease)).toThrow(
      '"autoRenew" must be true or false',
    );
    expect(() => parseLeaseRequest('k', { permits: 2, mode: 'shared' }, defaults, lease)).toThrow(
      /"permits" and mode "shared" do not combine/,
    );
    expect(() => parseLeaseRequest('k', { metadata: [1] }, defaults, lease)).toThrow(
      '"metadata" must be a plain object',
    );
    expect(() => parseLeaseRequest('k', { metadata: { a: 'x\0y' } }, defaults, lease)).toThrow(
      '"metadata" must not contain NUL characters',
    );
    let error: unknown;
    try {
      parseLeaseRequest('k', { metadata: { n: 1n } }, defaults, lease);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe('"metadata" must be JSON-serialisable');
    expect((error as Error).cause).toBeInstanceOf(TypeError);
  });
});

describe('marginFor and assertAboveMargin', () => {
  it('take the configured margin, else min(1 s, ttl / 10)', () => {
    expect(marginFor(defaults, 5_000)).toBe(500);
    expect(marginFor(defaults, 60_000)).toBe(1_000);
    expect(marginFor(resolveOptions({ pool, safetyMarginMs: 250 }), 60_000)).toBe(250);
    expect(() => assertAboveMargin(100, 100)).toThrow(InvalidArgumentError);
    expect(() => assertAboveMargin(Number.NaN, 100)).toThrow(InvalidArgumentError);
    expect(() => assertAboveMargin(101, 100)).not.toThrow();
  });
});
