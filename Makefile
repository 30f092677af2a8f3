# The two commands of the README: `make run` and `make test`.
.PHONY: run test quick build

run:
	go run ./cmd/twofold serve --dev

# Everything CI runs: installs and starts PostgreSQL when missing.
test:
	./scripts/test.sh

# The quick loop: SQLite only, no race detector.
quick:
	go test ./...

build:
	go build -o twofold ./cmd/twofold
