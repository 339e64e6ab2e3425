// The pure parts of `pgfence ls`: the close-to-expiry rule, how ages read, and how --watch
// frames replace each other on a terminal (and follow each other elsewhere).
import { describe, expect, it } from 'vitest';
import { formatAge } from '../../src/cli/format.js';
import { isExpiring } from '../../src/cli/ls-view.js';
import { Screen } from '../../src/cli/screen.js';

const ESC = String.fromCharCode(27);

const holder = (heldMs: number, expiresInMs: number) => ({
  owner: 'o',
  token: 1n,
  acquiredAt: new Date(0),
  expiresAt: new Date(0),
  metadata: null,
  heldMs,
  expiresInMs,
});

describe('isExpiring', () => {
  it('marks under a fifth of the term left, bounded by the threshold', () => {
    // A 10 s term, never renewed: marked under 2 s left (a fifth), whatever the bound above it.
    expect(isExpiring(holder(8_100, 1_900), 5_000)).toBe(true);
    expect(isExpiring(holder(7_900, 2_100), 5_000)).toBe(false);
    // A long-renewed lease (a term of an hour): only the bound counts.
    expect(isExpiring(holder(3_600_000 - 4_000, 4_000), 5_000)).toBe(true);
    expect(isExpiring(holder(3_600_000 - 6_000, 6_000), 5_000)).toBe(false);
    expect(isExpiring(holder(3_600_000 - 6_000, 6_000), 10_000)).toBe(true);
    // Just taken: never.
    expect(isExpiring(holder(0, 30_000), 60_000)).toBe(false);
  });
});

describe('formatAge', () => {
  it('reads as ms, tenths of seconds, minutes and seconds, hours and minutes', () => {
    expect(formatAge(0)).toBe('0ms');
    expect(formatAge(-3)).toBe('0ms');
    expect(formatAge(999)).toBe('999ms');
    expect(formatAge(1_000)).toBe('1.0s');
    expect(formatAge(12_345)).toBe('12.3s');
    expect(formatAge(59_999)).toBe('59.9s');
    expect(formatAge(60_000)).toBe('1m00s');
    expect(formatAge(245_000)).toBe('4m05s');
    expect(formatAge(3_600_000 + 7 * 60_000 + 59_000)).toBe('1h07m');
  });
});

function stream(isTTY: boolean, rows = 40) {
  const written: string[] = [];
  const out = {
    isTTY,
    rows,
    write: (s: string) => {
      written.push(s);
      return true;
    },
  };
  return { out: out as unknown as NodeJS.WriteStream, written };
}

describe('Screen', () => {
  it('on a terminal: redraws in place, clears what the last frame left, shows the cursor at the end', () => {
    const { out, written } = stream(true);
    const screen = new Screen(out);
    screen.frame('a\nbb\n');
    screen.frame('c\n');
    screen.end();
    expect(written).toEqual([
      `${ESC}[?25l${ESC}[2J${ESC}[Ha${ESC}[K\nbb${ESC}[K\n${ESC}[J`,
      `${ESC}[Hc${ESC}[K\n${ESC}[J`,
      `${ESC}[?25h`,
    ]);
  });

  it('on a terminal: cuts a frame to the window so that it never scrolls', () => {
    const { out, written } = stream(true, 4);
    const screen = new Screen(out);
    screen.frame('1\n2\n3\n4\n5\n');
    expect(written[0]).toBe(
      `${ESC}[?25l${ESC}[2J${ESC}[H1${ESC}[K\n2${ESC}[K\n… 3 more lines${ESC}[K\n${ESC}[J`,
    );
  });

  it('elsewhere: frames follow each other one blank line apart, without escape codes', () => {
    const { out, written } = stream(false);
    const screen = new Screen(out);
    screen.frame('a\n');
    screen.frame('b\n');
    screen.end();
    expect(written.join('')).toBe('a\n\nb\n');
  });
});
