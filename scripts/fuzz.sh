#!/usr/bin/env bash
# Runs every Go fuzz target (security.md §3.10) for FUZZTIME each
# (default 50000x: fifty thousand inputs). go test runs their seed
# corpora and the failures found before (testdata/fuzz/) on every run;
# this explores beyond them. A failure leaves its input in the package's
# testdata/fuzz/: commit it. A count, not a duration: with a duration,
# Go 1.26's coordinator can fail a target with "context deadline
# exceeded" as time runs out on a busy machine (golang/go#75804, fixed
# in Go 1.27), with nothing found.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
fuzztime=${FUZZTIME:-50000x}
status=0
for file in $(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' --include='*_test.go' .); do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
    echo "==> fuzz $pkg $target ($fuzztime)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" 2>&1 | tail -n 20 || status=1
  done
done
exit "$status"
