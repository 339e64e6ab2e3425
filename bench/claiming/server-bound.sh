#!/usr/bin/env bash
# How fast PostgreSQL itself runs a claiming batch's statements, with no Node client in the way:
# pgbench (a C client, 4 connections) sends pgfence's batch (claim, BEGIN, xact_release,
# completion, COMMIT) and the plain SKIP LOCKED loop's (claim UPDATE, completion UPDATE) in turn,
# three times each, over tables of 400,000 jobs. The ratio of batches per second is the ceiling
# of scenario 3's "pgfence / plain" on this server, whatever the client costs.
#   bash bench/claiming/server-bound.sh [url]      (needs pgbench and psql; skipped without)
set -euo pipefail
url="${1:-${PGFENCE_TEST_URL:-postgres://postgres@127.0.0.1:5432/test}}"
here="$(cd "$(dirname "$0")" && pwd)"
pgbench="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1 || true)"
if [ -z "$pgbench" ] || ! command -v psql >/dev/null; then
  echo "skipped: pgbench or psql not found"
  exit 0
fi
schema="bench_server_bound_$$"
work="$(mktemp -d)"
cleanup() { psql -q "$url" -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
node --import tsx "$here/../../src/cli/main.ts" migrate --url "$url" --schema "$schema" >/dev/null
for f in fence plain; do sed "s/:schema\./\"$schema\"./g" "$here/pgbench/$f.sql" > "$work/$f.sql"; done
psql -q "$url" <<SQL
CREATE TABLE "$schema".jobs (id bigint PRIMARY KEY, key text NOT NULL,
  done boolean NOT NULL DEFAULT false, done_count smallint NOT NULL DEFAULT 0);
CREATE INDEX ON "$schema".jobs (id) WHERE NOT done;
INSERT INTO "$schema".jobs (id, key) SELECT g, 'job:' || g FROM generate_series(1, 400000) g;
CREATE TABLE "$schema".plain_jobs (id bigint PRIMARY KEY, key text NOT NULL,
  status smallint NOT NULL DEFAULT 0, done_count smallint NOT NULL DEFAULT 0);
CREATE INDEX ON "$schema".plain_jobs (id) WHERE status = 0;
INSERT INTO "$schema".plain_jobs (id, key) SELECT g, 'job:' || g FROM generate_series(1, 400000) g;
SQL
reset() {
  psql -q "$url" -c "TRUNCATE \"$schema\".leases" \
    -c "UPDATE \"$schema\".jobs SET done = false, done_count = 0 WHERE done" \
    -c "UPDATE \"$schema\".plain_jobs SET status = 0, done_count = 0 WHERE status <> 0" \
    -c "VACUUM ANALYZE \"$schema\".jobs" -c "VACUUM ANALYZE \"$schema\".plain_jobs" >/dev/null
}
declare -A runs
for round in 1 2 3; do
  for f in fence plain; do
    reset
    tps="$("$pgbench" -n -M extended -c 4 -j 2 -t 1000 -f "$work/$f.sql" "$url" 2>&1 | awk '/^tps/ {print $3}')"
    jobs="$(psql -Atq "$url" -c "SELECT count(*) FILTER (WHERE $([ $f = fence ] && echo done || echo 'status = 2')) FROM \"$schema\".$([ $f = fence ] && echo jobs || echo plain_jobs)")"
    echo "round $round: $f $tps batches/s, $jobs jobs done in 4,000 batches"
    runs[$f]="${runs[$f]:-} $tps"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | sed -n 2p; }
fence="$(echo "${runs[fence]}" | median)"
plain="$(echo "${runs[plain]}" | median)"
awk -v a="$fence" -v b="$plain" 'BEGIN { printf "median batches/s: pgfence %.0f, plain %.0f; pgfence / plain = %.2fx\n", a, b, a / b }'
