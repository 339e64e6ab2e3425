import { describe, expect, it } from 'vitest';
import { InvalidKeyError } from '../../src/errors.js';
import { advisoryKeyId, validateAdvisoryKey, validateKey } from '../../src/keys.js';

describe('validateKey', () => {
  it('accepts 1 to 256 characters, counted as code points', () => {
    expect(validateKey('a')).toBe('a');
    expect(validateKey('x'.repeat(256))).toHaveLength(256);
    expect(validateKey('😀'.repeat(256))).toHaveLength(512);
  });

  it('refuses empty, over-long, non-string, NUL and ill-formed keys with a typed error', () => {
    for (const bad of [
      '',
      'x'.repeat(257),
      '😀'.repeat(257),
      'a\0b',
      '\ud800',
      42,
      null,
      undefined,
      {},
      ['k'],
    ]) {
      let caught: unknown;
      try {
        validateKey(bad);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidKeyError);
      expect((caught as InvalidKeyError).code).toBe('INVALID_KEY');
    }
  });
});

describe('advisoryKeyId', () => {
  it('is a stable signed 64-bit hash, namespaced by schema', () => {
    const a = advisoryKeyId('pgfence', 'invoice:42');
    expect(advisoryKeyId('pgfence', 'invoice:42')).toBe(a);
    expect(advisoryKeyId('other', 'invoice:42')).not.toBe(a);
    expect(advisoryKeyId('pgfence', 'invoice:43')).not.toBe(a);
    expect(a >= -(2n ** 63n) && a < 2n ** 63n).toBe(true);
  });

  it('uses a bigint key as it is, if it fits in int8', () => {
    expect(advisoryKeyId('pgfence', 42n)).toBe(42n);
    expect(advisoryKeyId('pgfence', -(2n ** 63n))).toBe(-(2n ** 63n));
    expect(() => advisoryKeyId('pgfence', 2n ** 63n)).toThrow(InvalidKeyError);
    expect(() => validateAdvisoryKey(2n ** 64n)).toThrow(InvalidKeyError);
    expect(validateAdvisoryKey(7n)).toBe(7n);
  });
});
