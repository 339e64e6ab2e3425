import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { constants, hostname } from 'node:os';
import { LockTimeoutError, type AdvisoryLock, type Lease } from '../../index.js';
import { assertReachable, openFence, type ConnectionFlags, type OpenFence } from '../connection.js';
import { parseDuration } from '../duration.js';
import { bounded } from '../bounded.js';
import { CliError, UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { addConnectionOptions } from '../options.js';

interface RunFlags extends ConnectionFlags {
  ttl: string;
  wait: string;
  grace: string;
  advisory?: boolean;
  permits?: string;
  shared?: boolean;
}

/** Signals passed on to the command, so `kill <pgfence pid>` reaches it as it would reach it alone. */
const FORWARDED: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
];

/** How long releasing may take once the command has exited (the database may be gone). */
const CLEANUP_MS = 3_000;

/** Exit code 127, as shells report a command that cannot be started. */
const CANNOT_START = 127;

/**
 * `pgfence run <key> -- <command>`: flock(1) for a fleet. Takes the lease (or an advisory
 * lock), keeps it renewed while the command runs, and stops the command if it is lost.
 */
export function registerRun(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('run')
      .description(
        'run a command while holding a lease (or advisory lock), like flock(1) for a fleet',
      )
      .argument('<key>', 'the lease or lock key')
      .argument('<command...>', 'the command and its arguments (put them after --)')
      .option('--ttl <duration>', 'lease time-to-live; renewed every third of it', '30s')
      .option(
        '--wait <duration>',
        'how long to wait for the key: 0 fails at once, "forever"',
        'forever',
      )
      .option('--grace <duration>', 'after a lost lease, time between SIGTERM and SIGKILL', '10s')
      .option('--advisory', 'take a session advisory lock instead of a lease (no token, no TTL)')
      .option('--permits <n>', 'a semaphore: at most n holders of the key at once')
      .option(
        '--shared',
        'shared: overlaps other --shared holders of the key, never an exclusive one (a lease, or with --advisory a shared advisory lock)',
      )
      .addHelpText(
        'after',
        `
The command gets PGFENCE_KEY and, for a lease, PGFENCE_TOKEN (its fencing token) in its
environment. Exit codes: the command's own; 128+N if it died of signal N; ${EXIT.NOT_ACQUIRED} the key
was held elsewhere until --wait ran out; ${EXIT.LOST} the lease was lost and the command stopped;
${CANNOT_START} the command could not be started; ${EXIT.UNAVAILABLE} no database; ${EXIT.USAGE} bad usage.`,
      ),
  ).action(async (key: string, command: string[], flags: RunFlags) => {
    const ttlMs = parseDuration(flags.ttl, '--ttl');
    const waitMs = parseDuration(flags.wait, '--wait', { allowForever: true });
    const graceMs = parseDuration(flags.grace, '--grace');
    if (ttlMs <= 0) throw new UsageError('--ttl must be above 0');
    if (key.length === 0) throw new UsageError('the key must not be empty');
    const permits = parsePermits(flags.permits);
    if (flags.advisory && permits !== undefined) {
      throw new UsageError('--permits applies to leases, not to --advisory');
    }
    if (permits !== undefined && flags.shared) {
      throw new UsageError('--permits and --shared do not combine');
    }
    const kind = {
      ...(permits === undefined ? {} : { permits }),
      ...(flags.shared ? { mode: 'shared' as const } : {}),
    };
    const [file, ...args] = command;
    if (!file) throw new UsageError('run needs a command after the key');

    // Ctrl-C before the command starts (connecting, or waiting for the key) ends pgfence with
    // 128+N and never runs the command; from the start of the command on, signals are forwarded.
    const interrupted = new AbortController();
    const onSignal = (signal: NodeJS.Signals): void =>
      interrupted.abort(
        new CliError(`interrupted by ${signal}`, 128 + (constants.signals[signal] ?? 0)),
      );
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const open = openFence(flags, { poolSize: 2, onError: reportWhileWaiting() });
    try {
      let held: Held | null;
      try {
        // A database out of reach at start is exit 69 within the connect bound, whatever --wait
        // says; once it answered, a loss while waiting is retried until --wait and reported.
        await assertReachable(open);
        interrupted.signal.throwIfAborted();
        held = await acquire(open, key, {
          ttlMs,
          waitMs,
          advisory: flags.advisory === true,
          kind,
          signal: interrupted.signal,
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      if (interrupted.signal.aborted) {
        // The signal came as the key was granted: give it back rather than run the command.
        await held?.handle.release().catch(() => false);
        throw interrupted.signal.reason;
      }
      if (held === null) {
        throw new CliError(`"${key}" is held elsewhere`, EXIT.NOT_ACQUIRED);
      }
      done(await runHolding(held, file, args, graceMs));
    } finally {
      await open.close();
    }
  });
}

/** How often the same kind of trouble is reported while waiting. */
const REPORT_EVERY_MS = 5_000;

/** Reports database trouble on stderr (at most every few seconds) while the command waits or runs. */
function reportWhileWaiting(): (error: unknown) => void {
  let last = -Infinity;
  return (error) => {
    const now = performance.now();
    if (now - last < REPORT_EVERY_MS) return;
    last = now;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`pgfence: database trouble, retrying: ${message}\n`);
  };
}

type Held = { kind: 'lease'; handle: Lease } | { kind: 'advisory'; handle: AdvisoryLock };

async function acquire(
  open: OpenFence,
  key: string,
  options: {
    ttlMs: number;
    waitMs: number;
    advisory: boolean;
    kind: { permits?: number; mode?: 'shared' };
    /** Aborted by Ctrl-C: ends the wait, and the lock is then never taken. */
    signal: AbortSignal;
  },
): Promise<Held | null> {
  const { fence } = open;
  const { signal } = options;
  try {
    if (options.advisory) {
      const mode = options.kind.mode ?? 'exclusive';
      const handle =
        options.waitMs === 0
          ? await fence.tryLock(key, { mode })
          : await fence.lock(key, { mode, waitMs: options.waitMs, signal });
      return handle && { kind: 'advisory', handle };
    }
    const lease = {
      ...options.kind,
      ttlMs: options.ttlMs,
      autoRenew: true,
      metadata: { command: 'pgfence run', host: hostname(), pid: process.pid },
    };
    const handle =
      options.waitMs === 0
        ? await fence.tryLease(key, lease)
        : await fence.lease(key, { ...lease, waitMs: options.waitMs, signal });
    return handle && { kind: 'lease', handle };
  } catch (error) {
    if (error instanceof LockTimeoutError) return null;
    if (signal.aborted) throw signal.reason;
    throw error;
  }
}

/** Runs the command while `held` lasts; resolves with the exit code `pgfence run` should give. */
async function runHolding(
  held: Held,
  file: string,
  args: string[],
  graceMs: number,
): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, PGFENCE_KEY: String(held.handle.key) };
  if (held.kind === 'lease') env.PGFENCE_TOKEN = held.handle.token.toString();
  else delete env.PGFENCE_TOKEN;

  const child = spawn(file, args, { stdio: 'inherit', env });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  for (const signal of FORWARDED) process.on(signal, forward);

  let lost = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onLost = (): void => {
    lost = true;
    const reason = held.handle.signal.reason as unknown;
    const why = reason instanceof Error ? reason.message : 'lost';
    process.stderr.write(
      `pgfence: lost "${String(held.handle.key)}" (${why}); stopping the command\n`,
    );
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  };
  if (held.handle.signal.aborted) onLost();
  else held.handle.signal.addEventListener('abort', onLost, { once: true });

  const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | Error>(
    (resolve) => {
      child.once('error', (error) => resolve(error));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  clearTimeout(killTimer);
  for (const signal of FORWARDED) process.off(signal, forward);
  held.handle.signal.removeEventListener('abort', onLost);
  // A lost lease has nothing left to release (and its database may be the reason it was lost).
  if (!lost) await bounded(held.handle.release(), CLEANUP_MS);

  if (outcome instanceof Error) {
    process.stderr.write(`pgfence: cannot run "${file}": ${outcome.message}\n`);
    return CANNOT_START;
  }
  if (lost) return EXIT.LOST;
  if (outcome.signal) return 128 + (constants.signals[outcome.signal] ?? 0);
  return outcome.code ?? EXIT.FAILED;
}

function parsePermits(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1) {
    throw new UsageError(`--permits takes a whole number of at least 1, got "${value}"`);
  }
  return Number(value);
}
