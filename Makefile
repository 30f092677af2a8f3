# The two commands of the README: `make run` and `make test`.
.PHONY: run test quick fuzz build

run:
	go run ./cmd/twofold serve --dev

# Everything CI runs: installs and starts PostgreSQL when missing.
test:
	./scripts/test.sh

# The quick loop: SQLite only, no race detector.
quick:
	go test ./...

# Every fuzz target for a million inputs each (FUZZTIME=10000000x make
# fuzz for more; a count, see scripts/fuzz.sh).
fuzz:
	FUZZTIME=$${FUZZTIME:-1000000x} ./scripts/fuzz.sh

build:
	go build -o twofold ./cmd/twofold
