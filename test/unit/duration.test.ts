import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';
import { formatDuration, parseCount, parseDuration } from '../../src/cli/duration.js';
import { EXIT } from '../../src/cli/exit-codes.js';

describe('parseDuration', () => {
  it('reads ms, s, m and h, and a bare number as seconds (as flock and timeout do)', () => {
    expect(parseDuration('500ms', '--wait')).toBe(500);
    expect(parseDuration('30s', '--wait')).toBe(30_000);
    expect(parseDuration('1.5s', '--wait')).toBe(1_500);
    expect(parseDuration('5m', '--wait')).toBe(300_000);
    expect(parseDuration('1h', '--wait')).toBe(3_600_000);
    expect(parseDuration('10', '--wait')).toBe(10_000);
    expect(parseDuration(' 2M ', '--wait')).toBe(120_000);
  });

  it('takes "forever" only where it is allowed', () => {
    for (const word of ['forever', 'inf', 'Infinity']) {
      expect(parseDuration(word, '--wait', { allowForever: true })).toBe(Infinity);
      expect(() => parseDuration(word, '--ttl')).toThrow(UsageError);
    }
  });

  it('refuses anything else with a usage error naming the flag and the text', () => {
    for (const text of ['', '-1s', '5 min', '1d', 's', '1e3', '0x10']) {
      let error: unknown;
      try {
        parseDuration(text, '--ttl');
      } catch (e) {
        error = e;
      }
      expect(error, text).toBeInstanceOf(UsageError);
      expect((error as UsageError).exitCode).toBe(EXIT.USAGE);
      expect((error as Error).message).toContain('--ttl');
      expect((error as Error).message).toContain(`"${text}"`);
    }
  });

  it('refuses a duration too large to be a number', () => {
    expect(() => parseDuration(`${'9'.repeat(400)}h`, '--ttl')).toThrow(/out of range/);
  });
});

describe('formatDuration', () => {
  it('writes what parseDuration reads back to the same milliseconds', () => {
    for (const ms of [1, 500, 1_000, 1_500, 30_000, 60_000, 90_000, 3_600_000, Infinity]) {
      const text = formatDuration(ms);
      expect(parseDuration(text, '--x', { allowForever: true }), text).toBe(ms);
    }
    expect(formatDuration(1_500)).toBe('1500ms');
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(120_000)).toBe('2m');
  });
});

describe('parseCount', () => {
  it('takes whole numbers within the bounds, bounds included', () => {
    expect(parseCount('1', '--limit', 1, 10)).toBe(1);
    expect(parseCount('10', '--limit', 1, 10)).toBe(10);
  });

  it('refuses numbers out of bounds, fractions, signs and words', () => {
    for (const text of ['0', '11', '2.5', '-3', '+3', 'ten', '', '1e1']) {
      expect(() => parseCount(text, '--limit', 1, 10), text).toThrow(
        /--limit takes a whole number from 1 to 10/,
      );
    }
  });
});
