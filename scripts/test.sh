#!/usr/bin/env bash
# The one test command (`make test`): on a fresh machine it installs and
# starts PostgreSQL, creates a fresh test database, then runs the gofmt
# check, go vet, go test -race with PostgreSQL required, and a short
# run of every fuzz target.
# Set TWOFOLD_TEST_DATABASE_URL to use a database of your own instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

log() { echo "==> $*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and this is not root: install it, or set TWOFOLD_TEST_DATABASE_URL"
    log "installing PostgreSQL with apt-get"
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null || die "PostgreSQL does not answer on 127.0.0.1:5432"

  # A role with a password works under trust and scram-sha-256 alike.
  local db="twofold_test_$$_$(date +%s)"
  as_postgres psql -v ON_ERROR_STOP=1 -qAt -d postgres <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'twofold_test') THEN
    CREATE ROLE twofold_test LOGIN PASSWORD 'twofold_test';
  END IF;
END \$\$;
CREATE DATABASE $db OWNER twofold_test;
SQL
  export TWOFOLD_TEST_DATABASE_URL="postgres://twofold_test:twofold_test@127.0.0.1:5432/$db?sslmode=disable"
  trap "as_postgres psql -qAt -d postgres -c 'DROP DATABASE IF EXISTS $db' >/dev/null 2>&1 || true" EXIT
  log "fresh PostgreSQL database $db"
}

if [ -z "${TWOFOLD_TEST_DATABASE_URL:-}" ]; then
  ensure_postgres
fi

# The browser suite (e2e) drives Debian's Chromium; with CI=true a
# missing browser fails the tests, so install it when we can.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Chromium with apt-get"
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  else
    log "Chromium is not installed: the browser suite will skip (or fail with CI=true)"
  fi
fi

log "gofmt"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './node_modules/*'))
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"

log "go vet"
go vet ./...

# The conformance tests' Node relying party (openid-client), from the
# committed lockfile; without node the test skips, but not in CI.
if command -v node >/dev/null && command -v npm >/dev/null; then
  log "npm ci (conformance/node)"
  (cd conformance/node && npm ci --no-audit --no-fund)
elif [ "${CI:-}" = "true" ]; then
  die "node and npm are needed for conformance/node (the openid-client relying party)"
fi

log "go test -race (SQLite and PostgreSQL)"
out=$(mktemp)
set +e
go test -race -count=1 -v ./... 2>&1 | tee "$out" | grep -E '^(ok|FAIL|---|panic:|\s+---\s+(FAIL|SKIP))|^\s+\S+_test\.go:[0-9]+:' 
status=${PIPESTATUS[0]}
set -e
passed=$(grep -cE '^\s*--- PASS' "$out" || true)
failed=$(grep -cE '^\s*--- FAIL' "$out" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$out" || true)
for want in 'TestStore/sqlite' 'TestStore/postgres'; do
  grep -qE -- "--- PASS: $want " "$out" || { echo "test.sh: the store suite did not pass on ${want#TestStore/}" >&2; status=1; }
done
echo "store suite: $(grep -cE -- '--- PASS: TestStore/sqlite/' "$out") tests passed on SQLite, $(grep -cE -- '--- PASS: TestStore/postgres/' "$out") on PostgreSQL"
if [ "$status" != 0 ]; then
  # The filter above hides what explains a failure: the server's log
  # lines and, on a timeout, the goroutines. Show them, and keep the
  # whole log in artifacts/.
  mkdir -p artifacts && cp "$out" artifacts/test.log
  echo "==> what the failing tests printed (all of it: artifacts/test.log)"
  grep -E -B 40 -- '^\s*--- FAIL' "$out" | grep -vE '^=== (RUN|PAUSE|CONT)' | tail -n 200 || true
  grep -E -A 150 '^panic: ' "$out" | head -n 300 || true
fi
rm -f "$out"

# The seed corpora ran above; explore a little beyond them.
log "fuzz targets, ${FUZZTIME:-50000x} each (scripts/fuzz.sh)"
./scripts/fuzz.sh || { echo "test.sh: a fuzz target failed (its input is in testdata/fuzz/)" >&2; status=1; }
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
