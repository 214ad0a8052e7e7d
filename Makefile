# busd — see README.md. Every target works on a machine with only Go.

GO       ?= go
BIN      := bin
FUZZTIME ?= 10s
BENCH    ?= .
ARGS     ?=

.PHONY: all build bins run test vet fmt-check lint tidy-check bench bench-deps bench-go fuzz clean

all: build

build: bins
	$(GO) build ./...

bins:
	$(GO) build -o $(BIN)/ ./cmd/busd ./cmd/bus

# Starts busd in the foreground on the default socket directory. Stop it with
# Ctrl-C.
run: bins
	@echo "Starting busd. From another terminal, try:"
	@echo "    $(BIN)/bus sub 'app.>'"
	@echo "    $(BIN)/bus pub app.hello 'hi there'"
	@echo
	exec $(BIN)/busd

# The bench module is tested without -race: its harness test starts each
# role as a separate process, and race-built children take ~1 s each to
# start, which turns a 10 s test into minutes. It is race-clean (checked with
# go test -race in bench/), just too slow for every CI run.
test: vet fmt-check
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

lint: vet fmt-check
	cd bench && $(GO) vet ./...

# Fails if go mod tidy would change go.mod or go.sum of either module, and
# prints the change to make.
tidy-check:
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff

# The side-by-side comparison of busd with the limit and with NATS, each role
# in its own process (bench/cmd/busbench). ARGS passes flags through:
# make bench ARGS='-quick -json'.
bench:
	cd bench && $(GO) build -o ../$(BIN)/busbench ./cmd/busbench
	$(BIN)/busbench $(ARGS)

# Installs the outside peers busbench compares busd with, from Debian:
# dbus-daemon, dbus-broker (whose systemd dependency brings
# systemd-socket-activate) and mosquitto. busbench skips any that is missing,
# saying so; make test needs none of them. Without root or apt-get it prints
# what to run instead.
BENCH_DEPS := dbus-daemon dbus-broker mosquitto

bench-deps:
	@if ! command -v apt-get >/dev/null; then \
		echo "bench-deps: no apt-get here; install these Debian packages' equivalents: $(BENCH_DEPS)"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "bench-deps needs root; run:"; \
		echo "    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_DEPS)"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_DEPS); \
	fi

# The go test benchmarks of both modules. BENCH filters by name, e.g.
# make bench-go BENCH='Index/match/literal'.
bench-go:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...
	cd bench && $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...

# Runs every fuzz target of every package for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Only what this project's targets make: bin/ (binaries, busbench). Go's
# build and test caches are the user's, shared with every other module, and
# stay.
clean:
	rm -rf $(BIN)
