import type { Inspection } from '../index.js';

/** Pads columns to their widest cell; the first row is the header. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** An inspection as plain JSON: bigints become decimal strings, dates ISO strings. */
export function inspectionJson(inspection: Inspection): unknown {
  return {
    leases: inspection.leases.map((l) => ({
      key: l.key,
      owner: l.owner,
      token: l.token.toString(),
      acquiredAt: l.acquiredAt.toISOString(),
      expiresAt: l.expiresAt.toISOString(),
      metadata: l.metadata ?? null,
      mode: l.mode,
      permits: l.permits,
      holders: l.holders.map((h) => ({
        owner: h.owner,
        token: h.token.toString(),
        acquiredAt: h.acquiredAt.toISOString(),
        expiresAt: h.expiresAt.toISOString(),
        metadata: h.metadata ?? null,
      })),
      waiters: l.waiters.length,
    })),
    advisory: inspection.advisory.map((a) => ({
      key: a.key === null ? null : a.key.toString(),
      lockId: a.lockId.toString(),
      pid: a.pid,
      applicationName: a.applicationName,
      granted: a.granted,
    })),
  };
}

/** An inspection as the tables `pgfence ls` prints. */
export function inspectionText(inspection: Inspection): string {
  const parts: string[] = [];
  if (inspection.leases.length === 0) {
    parts.push('no live leases');
  } else {
    parts.push(
      // One row per holder: a shared or semaphore key has several, each with its own token.
      table([
        ['KEY', 'TOKEN', 'OWNER', 'ACQUIRED', 'EXPIRES', 'MODE', 'WAITERS'],
        ...inspection.leases.flatMap((l) =>
          l.holders.map((h) => [
            l.key,
            h.token.toString(),
            h.owner,
            h.acquiredAt.toISOString(),
            h.expiresAt.toISOString(),
            l.mode === 'semaphore' ? `semaphore ${l.holders.length}/${l.permits}` : l.mode,
            String(l.waiters.length),
          ]),
        ),
      ]),
    );
  }
  if (inspection.advisory.length > 0) {
    parts.push(
      table([
        ['ADVISORY LOCK', 'KEY', 'PID', 'APPLICATION', 'STATE'],
        ...inspection.advisory.map((a) => [
          a.lockId.toString(),
          a.key === null ? '-' : a.key.toString(),
          String(a.pid),
          a.applicationName ?? '-',
          a.granted ? 'held' : 'waiting',
        ]),
      ]),
    );
  }
  return parts.join('\n\n') + '\n';
}
