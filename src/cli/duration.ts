import { UsageError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/**
 * Parses a duration such as `500ms`, `30s`, `5m` or `1h` into milliseconds. A bare number is
 * seconds, as flock(1) and timeout(1) read it; `forever` (or `inf`) is Infinity when allowed.
 */
export function parseDuration(
  text: string,
  flag: string,
  options: { allowForever?: boolean } = {},
): number {
  const value = text.trim().toLowerCase();
  if (options.allowForever && (value === 'forever' || value === 'inf' || value === 'infinity')) {
    return Infinity;
  }
  const match = PATTERN.exec(value);
  if (!match) {
    throw new UsageError(
      `${flag} takes a duration like 500ms, 30s, 5m or 1h${options.allowForever ? ' (or "forever")' : ''}, got "${text}"`,
    );
  }
  const ms = Number(match[1]) * (UNITS[match[2] ?? 's'] ?? 1_000);
  if (!Number.isFinite(ms)) throw new UsageError(`${flag} is out of range: "${text}"`);
  return ms;
}

/** Formats milliseconds the way `parseDuration` reads them back. */
export function formatDuration(ms: number): string {
  if (ms === Infinity) return 'forever';
  if (ms < 1_000 || ms % 1_000 !== 0) return `${ms}ms`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  return `${ms / 1_000}s`;
}

/** Parses a whole number flag within bounds. */
export function parseCount(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, got "${text}"`);
  }
  return n;
}
