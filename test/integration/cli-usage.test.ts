// The pgfence command's parsing, in-process (no database is reached): --help on every command,
// one-line errors with exit code 2 for bad usage, and durations. The subprocess tests in the
// other cli*.test.ts files cover the same entry point run as a real process.
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { formatDuration, parseDuration } from '../../src/cli/duration.js';
import { EXIT } from '../../src/cli/exit-codes.js';

let out = '';
let err = '';
beforeEach(() => {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('pgfence usage', () => {
  it('pgfence demo says where the demo lives instead of running it, exit code 1', async () => {
    expect(await runCli(['demo', '--quick'])).toBe(1);
    expect(err).toMatch(/not part of the installed package/);
    expect(err).toMatch(/npm run demo/);
    expect(out).toBe('');
  });

  it('prints the version from package.json on --version and -V, exit code 0', async () => {
    const manifest = new URL('../../package.json', import.meta.url);
    const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V']) {
      out = '';
      expect(await runCli([flag])).toBe(0);
      expect(out).toBe(`${version}\n`);
    }
    expect(err).toBe('');
  });

  it('answers --help on the program and on every command with exit code 0', async () => {
    expect(await runCli(['--help'])).toBe(0);
    for (const command of ['demo', 'run', 'ls', 'migrate', 'reap', 'release']) {
      expect(out).toMatch(new RegExp(`\\n  ${command} `));
    }
    for (const command of ['demo', 'run', 'ls', 'migrate', 'reap', 'release']) {
      out = '';
      expect(await runCli([command, '--help'])).toBe(0);
      expect(out).toMatch(new RegExp(`^Usage: pgfence ${command}`));
    }
    out = '';
    expect(await runCli(['help', 'run'])).toBe(0);
    expect(out).toMatch(/PGFENCE_TOKEN/);
    expect(out).toMatch(/75/);
    expect(out).toMatch(/76/);
  });

  it.each([
    [['ls', '--bogus'], /unknown option '--bogus'/],
    [['ls', '--prefix'], /argument missing/],
    [['run'], /missing required argument 'key'/],
    [['run', 'k'], /missing required argument 'command'/],
    [['run', 'k', '--ttl', '5 parsecs', '--', 'true'], /--ttl takes a duration/],
    [['run', 'k', '--wait', '-1s', '--', 'true'], /--wait takes a duration/],
    [['run', 'k', '--wait'], /argument missing/],
    [['run', '', '--', 'true'], /key must not be empty/],
    [['release'], /missing required argument 'key'/],
    [['release', 'k', '--token', 'abc'], /--token takes a fencing token/],
    [['reap', '--batch-size', '0'], /--batch-size takes a whole number/],
    [['migrate', '--schema', 'Not An Identifier'], /schema must be a plain identifier/],
    [['no-such-command'], /unknown command 'no-such-command'/],
  ])('%j → exit 2 and one line', async (args, message) => {
    expect(await runCli(args)).toBe(EXIT.USAGE);
    expect(err).toMatch(/^pgfence: /);
    expect(err).toMatch(message);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(out).toBe('');
  });
});

describe('durations', () => {
  it('reads ms, s, m, h and bare seconds', () => {
    expect(parseDuration('500ms', '--x')).toBe(500);
    expect(parseDuration('30s', '--x')).toBe(30_000);
    expect(parseDuration('5m', '--x')).toBe(300_000);
    expect(parseDuration('1h', '--x')).toBe(3_600_000);
    expect(parseDuration('1.5s', '--x')).toBe(1_500);
    expect(parseDuration('10', '--x')).toBe(10_000);
    expect(parseDuration('0', '--x')).toBe(0);
    expect(parseDuration('forever', '--wait', { allowForever: true })).toBe(Infinity);
  });

  it('refuses anything else with a usage error', () => {
    for (const text of ['', 's', '-1s', '5 m', '5d', 'forever', '1e3', 'NaN']) {
      expect(() => parseDuration(text, '--ttl')).toThrow(/--ttl takes a duration/);
    }
  });

  it('formats what it reads', () => {
    for (const text of ['500ms', '30s', '5m', '1500ms', 'forever']) {
      expect(formatDuration(parseDuration(text, '--x', { allowForever: true }))).toBe(text);
    }
  });
});
