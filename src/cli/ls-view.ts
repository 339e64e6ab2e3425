import pc from 'picocolors';
import type {
  AdvisoryLockInfo,
  Inspection,
  LeaseHolderInfo,
  LeaseInfo,
  LeaseWaiterInfo,
} from '../index.js';
import { formatAge, table, type Cell } from './format.js';

// What `pgfence ls` prints. Every age and time left comes from the inspection, which the
// database computed by its own clock: nothing here looks at the local clock.

/** The share of a lease's term under which it is marked close to expiry. */
const EXPIRING_SHARE = 0.2;

/** The text after a lease's time left when it is close to expiry, coloured or not. */
export const EXPIRING_MARK = '(expiring)';

/**
 * Close to expiry: under a fifth of its term (acquired → expires) left, and under `withinMs`.
 * A lease renewed in time (every third of its TTL, as `pgfence run` does, or every half) never
 * drops under a fifth of its TTL; a renewed lease's term is longer than its TTL, so `withinMs`
 * bounds the mark for those. The database does not store the TTL itself.
 */
export function isExpiring(holder: LeaseHolderInfo, withinMs: number): boolean {
  const termMs = holder.heldMs + holder.expiresInMs;
  return holder.expiresInMs < Math.min(withinMs, EXPIRING_SHARE * termMs);
}

function holderJson(h: LeaseHolderInfo, withinMs: number) {
  return {
    owner: h.owner,
    token: h.token.toString(),
    acquiredAt: h.acquiredAt.toISOString(),
    expiresAt: h.expiresAt.toISOString(),
    heldMs: h.heldMs,
    expiresInMs: h.expiresInMs,
    expiring: isExpiring(h, withinMs),
    metadata: h.metadata ?? null,
  };
}

const waiterJson = (w: LeaseWaiterInfo) => ({
  owner: w.owner,
  mode: w.mode,
  permits: w.permits,
  waitingSince: w.waitingSince.toISOString(),
  waitingMs: w.waitingMs,
});

const advisoryJson = (a: AdvisoryLockInfo) => ({
  key: a.key === null ? null : a.key.toString(),
  lockId: a.lockId.toString(),
  mode: a.mode,
  pid: a.pid,
  applicationName: a.applicationName,
  granted: a.granted,
  waitingSince: a.waitingSince === null ? null : a.waitingSince.toISOString(),
  waitingMs: a.waitingMs,
});

/**
 * An inspection as plain JSON: bigints become decimal strings, dates ISO strings. A lease's own
 * fields are its first holder's, as in `inspect()`.
 */
export function inspectionJson(inspection: Inspection, withinMs: number): unknown {
  return {
    at: inspection.at.toISOString(),
    expiringWithinMs: withinMs,
    leases: inspection.leases.map((l) => ({
      key: l.key,
      mode: l.mode,
      permits: l.permits,
      ...holderJson(l, withinMs),
      holders: l.holders.map((h) => holderJson(h, withinMs)),
      waiters: l.waiters.map(waiterJson),
    })),
    advisory: inspection.advisory.map(advisoryJson),
  };
}

/** How the table is coloured. */
export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Colours on a terminal only (a pipe or a file gets plain text, where the expiry mark is the
 * text alone), unless FORCE_COLOR asks for them; NO_COLOR turns them off everywhere.
 */
export const colorsFor = (stream: NodeJS.WriteStream): Colors =>
  pc.createColors(
    pc.isColorSupported && (stream.isTTY === true || Boolean(process.env.FORCE_COLOR)),
  );

function modeOf(l: LeaseInfo): string {
  return l.mode === 'semaphore' ? `semaphore ${l.holders.length}/${l.permits}` : l.mode;
}

function leaseRows(l: LeaseInfo, withinMs: number, c: Colors): Cell[][] {
  const held = l.holders.map((h): Cell[] => {
    const left = formatAge(h.expiresInMs);
    return [
      l.key,
      'held',
      modeOf(l),
      h.token.toString(),
      h.owner,
      formatAge(h.heldMs),
      isExpiring(h, withinMs)
        ? { text: `${left} ${EXPIRING_MARK}`, style: (s) => c.bold(c.yellow(s)) }
        : left,
    ];
  });
  const waiting = l.waiters.map((w): Cell[] =>
    [l.key, 'waiting', w.mode, '-', w.owner, formatAge(w.waitingMs), '-'].map((text) => ({
      text,
      style: c.dim,
    })),
  );
  return [...held, ...waiting];
}

function advisoryRow(a: AdvisoryLockInfo, c: Colors): Cell[] {
  const row = [
    a.lockId.toString(),
    a.key === null ? '-' : a.key.toString(),
    a.granted ? 'held' : 'waiting',
    a.mode,
    String(a.pid),
    a.applicationName || '-',
    // PostgreSQL keeps when a wait began, not when a lock was granted.
    a.waitingMs === null ? '-' : formatAge(a.waitingMs),
  ];
  return a.granted ? row : row.map((text) => ({ text, style: c.dim }));
}

/**
 * An inspection as the tables `pgfence ls` prints: one row per holder and per waiter (in queue
 * order), then the advisory locks.
 */
export function inspectionText(inspection: Inspection, withinMs: number, c: Colors): string {
  const parts: string[] = [];
  const bold = (row: string[]): Cell[] => row.map((text) => ({ text, style: c.bold }));
  if (inspection.leases.length === 0) {
    parts.push('no live leases');
  } else {
    parts.push(
      table([
        bold(['KEY', 'STATE', 'MODE', 'TOKEN', 'OWNER', 'AGE', 'EXPIRES IN']),
        ...inspection.leases.flatMap((l) => leaseRows(l, withinMs, c)),
      ]),
    );
  }
  if (inspection.advisory.length > 0) {
    parts.push(
      table([
        bold(['ADVISORY LOCK', 'KEY', 'STATE', 'MODE', 'PID', 'APPLICATION', 'AGE']),
        ...inspection.advisory.map((a) => advisoryRow(a, c)),
      ]),
    );
  }
  return parts.join('\n\n') + '\n';
}
