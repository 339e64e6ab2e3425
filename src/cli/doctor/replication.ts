// Replication: what a failover can lose. pgfence's acquire commits synchronously, so with
// synchronous (quorum) replication an acknowledged lease is on a standby before the caller
// hears of it; with asynchronous replication a promoted standby may lack the last commits.
import type { Check, Query } from './check.js';

/** `synchronous_standby_names`, parsed as PostgreSQL reads it. */
export interface SyncStandbys {
  method: 'none' | 'quorum' | 'priority';
  count: number;
  names: string[];
}

export function parseSyncStandbyNames(text: string): SyncStandbys {
  const value = text.trim();
  if (value === '') return { method: 'none', count: 0, names: [] };
  const list = (s: string) =>
    s
      .split(',')
      .map((n) => n.trim().replace(/^"(.*)"$/, '$1'))
      .filter(Boolean);
  const any = /^ANY\s+(\d+)\s*\((.*)\)$/is.exec(value);
  if (any) return { method: 'quorum', count: Number(any[1]), names: list(any[2]!) };
  const first = /^(?:FIRST\s+)?(\d+)\s*\((.*)\)$/is.exec(value);
  if (first) return { method: 'priority', count: Number(first[1]), names: list(first[2]!) };
  return { method: 'priority', count: 1, names: list(value) };
}

interface StandbyRow {
  application_name: string | null;
  state: string | null;
  sync_state: string | null;
  replay_lag_bytes: string | null;
}

export async function checkReplication(query: Query): Promise<Check> {
  const [settings] = await query<{
    synchronous_commit: string;
    synchronous_standby_names: string;
    privileged: boolean;
  }>(
    `SELECT current_setting('synchronous_commit') AS synchronous_commit,
            current_setting('synchronous_standby_names') AS synchronous_standby_names,
            (current_setting('is_superuser') = 'on'
              OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')) AS privileged`,
  );
  const { synchronous_commit: commit, privileged } = settings!;
  const sync = parseSyncStandbyNames(settings!.synchronous_standby_names);
  const standbys = await query<StandbyRow>(
    `SELECT application_name, state, sync_state,
            pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS replay_lag_bytes
       FROM pg_stat_replication ORDER BY application_name`,
  );
  const facts = {
    synchronousCommit: commit,
    synchronousStandbyNames: settings!.synchronous_standby_names,
    method: sync.method,
    required: sync.count,
    standbysVisible: standbys.length,
    standbyStateReadable: privileged,
    standbys: standbys.map((s) => ({
      name: s.application_name,
      state: s.state,
      syncState: s.sync_state,
      replayLagBytes: s.replay_lag_bytes === null ? null : Number(s.replay_lag_bytes),
    })),
  };
  const partial = privileged
    ? []
    : [
        `This role can see that ${standbys.length} standby connection(s) exist but not their state (pg_stat_replication shows other columns only to superusers and members of pg_read_all_stats or pg_monitor); the verdict rests on the settings.`,
      ];
  const lost =
    'A failover to such a standby can lose the last commits: leases acknowledged just before it are gone on the new primary (their holders learn it by their own deadline), and the database may hand their keys to someone else at once.';

  if (sync.method === 'none') {
    if (standbys.length === 0) {
      return {
        id: 'replication',
        status: 'ok',
        summary: 'no replication: no standby streams from this server',
        details: [
          'A crash and restart of this server keeps every lease and token. If a failover tool promotes a standby that is not connected now, run doctor again when it is.',
          ...partial,
        ],
        facts,
      };
    }
    return {
      id: 'replication',
      status: 'fail',
      summary: `asynchronous replication: ${standbys.length} standby(s) stream from this server, none synchronously`,
      details: [
        lost,
        "Set synchronous_standby_names = 'ANY 1 (s1, s2)' (quorum commit over your standbys' application_name) and have the failover tool promote the most advanced standby.",
        ...partial,
      ],
      facts,
    };
  }

  const method =
    sync.method === 'quorum'
      ? `quorum commit: ANY ${sync.count} of (${sync.names.join(', ')})`
      : `synchronous replication: the first ${sync.count} of (${sync.names.join(', ')})`;
  if (commit === 'off' || commit === 'local') {
    return {
      id: 'replication',
      status: 'fail',
      summary: `${method}, but synchronous_commit = ${commit} for this role`,
      details: [
        `With synchronous_commit = ${commit} a commit does not wait for the standbys. pgfence forces it on for an acquire, not for a renewal: a renewal acknowledged by this server alone can be lost in a failover, and the new primary then expires the lease before its holder's deadline.`,
        'Set synchronous_commit = on (the default) for the role or database pgfence uses.',
        ...partial,
      ],
      facts,
    };
  }
  const details: string[] = [
    'A commit returns only once enough standbys have it: a failover to the most advanced standby keeps every acknowledged lease. The failover tool must promote the most advanced standby; promoting one that was behind loses commits like asynchronous replication.',
  ];
  let status: Check['status'] = 'ok';
  if (commit === 'remote_write') {
    details.push(
      'synchronous_commit = remote_write: the standby has the commit in its OS cache, not on disk; a primary crash loses nothing, a primary crash together with a standby host crash can.',
    );
    status = 'warn';
  }
  if (privileged) {
    const counting = standbys.filter(
      (s) => s.state === 'streaming' && (s.sync_state === 'quorum' || s.sync_state === 'sync'),
    ).length;
    if (counting < sync.count) {
      status = 'warn';
      details.push(
        `Only ${counting} standby(s) count towards the ${sync.count} required now: commits wait until enough answer, so pgfence calls wait and time out — safe, but unavailable.`,
      );
    }
  }
  return {
    id: 'replication',
    status,
    summary: method,
    details: [...details, ...partial],
    facts,
  };
}
