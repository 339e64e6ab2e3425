#!/usr/bin/env bash
# Packs the tarball as `npm publish` would, installs it into a fresh project next to `pg` (from
# the local npm cache when it has them) and uses it the way a user would: an ESM script, a
# CommonJS script, both copies loaded in one process (their errors must recognise each other),
# `tsc --strict` on a typed example that is then run (`await using` lowered for Node 20), and
# the CLI: `pgfence --version`, `migrate`, `run`. The database is PGFENCE_TEST_URL, else the
# server at 127.0.0.1:5432; with neither reachable the database steps are skipped, said loudly.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
checks="$repo/scripts/pack-check"
work="$(mktemp -d "${TMPDIR:-/tmp}/pgfence-pack-XXXXXX")"
trap 'rm -rf "$work"' EXIT

t0=$(date +%s)
step() { echo "--> $*"; }

step "npm pack (prepack builds dist/)"
(cd "$repo" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball="$(ls "$work"/pgfence-*.tgz)"
echo "    $(basename "$tarball"): $(du -k "$tarball" | cut -f1) kB"
if tar -tzf "$tarball" | grep -E '\.map$|^package/(src|test|examples|bench)/'; then
  echo "the tarball carries source maps, sources, tests or the demo" >&2
  exit 1
fi

step "a fresh project: npm install <tarball> pg @types/pg"
app="$work/app"
mkdir "$app"
cp "$checks"/* "$app/"
cat >"$app/package.json" <<'JSON'
{ "name": "pgfence-pack-check", "private": true, "version": "0.0.0" }
JSON
(cd "$app" && npm install --silent --no-audit --no-fund --prefer-offline \
  "$tarball" pg @types/pg @types/node@20 >/dev/null)

step "tsc --strict on a typed example, then run it"
"$repo/node_modules/.bin/tsc" -p "$app/tsconfig.json"

step "pgfence --version"
version="$(cd "$app" && npx --no-install pgfence --version)"
expected="$(node -p "require('$repo/package.json').version")"
[ "$version" = "$expected" ] || { echo "pgfence --version said '$version', not '$expected'" >&2; exit 1; }

step "both copies in one process: errors recognised across CommonJS and ESM"
(cd "$app" && node dual.mjs)

url="${PGFENCE_TEST_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! (cd "$app" && node reachable.cjs "$url"); then
  echo "==> SKIPPED the database steps: no PostgreSQL answers at ${url%%@*}@… (set PGFENCE_TEST_URL)"
  echo "==> test:pack took $(($(date +%s) - t0)) s"
  exit 0
fi
schema="pack_$(node -e "console.log(require('crypto').randomBytes(5).toString('hex'))")"
cleanup() {
  (cd "$app" && node -e "
    const pg = require('pg');
    const c = new pg.Client({ connectionString: process.argv[1] });
    c.connect().then(() => c.query('DROP SCHEMA IF EXISTS ' + process.argv[2] + ' CASCADE')).finally(() => c.end());
  " "$url" "$schema") || true
  rm -rf "$work"
}
trap cleanup EXIT

step "npx pgfence migrate"
(cd "$app" && npx --no-install pgfence migrate --url "$url" --schema "$schema")

step "npx pgfence run <key> -- node -e …"
(cd "$app" && npx --no-install pgfence run pack-check --url "$url" --schema "$schema" -- \
  node -e "if (!/^[0-9]+\$/.test(process.env.PGFENCE_TOKEN ?? '')) process.exit(3); console.log('    ran with token', process.env.PGFENCE_TOKEN)")

step "ESM script"
(cd "$app" && PACK_URL="$url" PACK_SCHEMA="$schema" node esm.mjs)
step "CommonJS script"
(cd "$app" && PACK_URL="$url" PACK_SCHEMA="$schema" node cjs.cjs)
step "the typed example, compiled"
(cd "$app" && PACK_URL="$url" PACK_SCHEMA="$schema" node out/typed.mjs)

echo "==> test:pack passed in $(($(date +%s) - t0)) s"
