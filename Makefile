# busd — see README.md. Every target works on a machine with only Go.

GO       ?= go
BIN      := bin
FUZZTIME ?= 10s
BENCH    ?= .
ARGS     ?=

# The binaries say which version and commit they were built from (bus
# version, busd -version), read from the build info. -buildvcs=auto, Go's
# default, stamps it even where GOFLAGS turns it off; BUILDFLAGS= restores
# GOFLAGS's choice.
BUILDFLAGS ?= -buildvcs=auto

# make install: where things go. DESTDIR is prepended to every path (for
# packaging); PREFIX is what the installed files refer to (busd.service's
# ExecStart). systemd looks for user units in /usr/lib/systemd/user and
# /usr/local/lib/systemd/user, and in ~/.local/share/systemd/user for one
# user: with PREFIX=$$HOME/.local, set USERUNITDIR to that.
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# What make install generates by running the freshly built binaries:
# completions (bus completion bash|zsh|fish) and man pages (from bus help and
# busd -h). GENERATE= installs neither.
GENERATE    ?= completions man

.PHONY: all build bins run test vet fmt-check lint tools tidy-check bench bench-deps bench-go fuzz install uninstall clean

all: build

build: bins
	$(GO) build ./...

bins:
	$(GO) build $(BUILDFLAGS) -o $(BIN)/ ./cmd/busd ./cmd/bus

# The binaries as files, for make install: rebuilt only when a Go source file
# or go.mod is newer (go build itself decides what to recompile).
GOSRC := $(shell find . -path ./bench -prune -o -name '*.go' -print) go.mod go.sum

$(BIN)/busd $(BIN)/bus: $(GOSRC)
	$(GO) build $(BUILDFLAGS) -o $@ ./cmd/$(@F)

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

# staticcheck, pinned: v0.8.2 (2026.2.2) is built with and supports Go 1.26.
# make lint installs it from the module proxy into bin/ on first use;
# make tools does only that (.ci/run, so that a failing download shows as
# such).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(abspath $(BIN))/staticcheck-$(STATICCHECK_VERSION)/staticcheck

tools: $(STATICCHECK)

$(STATICCHECK):
	GOBIN=$(dir $(STATICCHECK)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# go vet, gofmt and staticcheck on both modules (staticcheck.conf, if any,
# says which checks are off and why).
lint: vet fmt-check $(STATICCHECK)
	cd bench && $(GO) vet ./...
	$(STATICCHECK) ./...
	cd bench && $(STATICCHECK) ./...

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

# Installs both binaries, the systemd user units (busd.service's ExecStart
# pointing at $(BINDIR)/busd) and what GENERATE names. It builds the binaries
# only if they are missing or older than a source file, so make, then
# sudo make install, builds as you and installs as root. What it generates it
# makes in a temporary directory, so it leaves nothing of root's in bin/, and
# a generator that fails installs nothing.
install: $(BIN)/busd $(BIN)/bus
	set -e; gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT; \
	sed 's|^ExecStart=[^ ]*/busd|ExecStart=$(BINDIR)/busd|' docs/systemd/busd.service >"$$gen/busd.service"; \
	grep -q '^ExecStart=$(BINDIR)/busd' "$$gen/busd.service" || \
		{ echo "install: docs/systemd/busd.service has no ExecStart=.../busd to point at $(BINDIR)/busd" >&2; exit 1; }; \
	if [ -n "$(filter completions,$(GENERATE))" ]; then \
		for sh in bash zsh fish; do \
			$(BIN)/bus completion $$sh >"$$gen/bus.$$sh"; test -s "$$gen/bus.$$sh"; \
		done; \
	fi; \
	if [ -n "$(filter man,$(GENERATE))" ]; then \
		$(BIN)/bus help >"$$gen/bus.help"; \
		sh scripts/manpage.sh bus "publish, subscribe and make requests on a busd message bus" \
			"bus COMMAND [flags] ARGS" busd <"$$gen/bus.help" >"$$gen/bus.1"; \
		$(BIN)/busd -h >"$$gen/busd.help"; \
		sh scripts/manpage.sh busd "the busd message bus broker" "busd [flags]" bus \
			<"$$gen/busd.help" >"$$gen/busd.1"; \
	fi; \
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(USERUNITDIR)"; \
	install -m 0755 $(BIN)/busd $(BIN)/bus "$(DESTDIR)$(BINDIR)/"; \
	install -m 0644 "$$gen/busd.service" docs/systemd/busd.socket "$(DESTDIR)$(USERUNITDIR)/"; \
	if [ -n "$(filter completions,$(GENERATE))" ]; then \
		install -D -m 0644 "$$gen/bus.bash" "$(DESTDIR)$(BASHCOMPDIR)/bus"; \
		install -D -m 0644 "$$gen/bus.zsh" "$(DESTDIR)$(ZSHCOMPDIR)/_bus"; \
		install -D -m 0644 "$$gen/bus.fish" "$(DESTDIR)$(FISHCOMPDIR)/bus.fish"; \
	fi; \
	if [ -n "$(filter man,$(GENERATE))" ]; then \
		install -d "$(DESTDIR)$(MANDIR)/man1"; \
		install -m 0644 "$$gen/bus.1" "$$gen/busd.1" "$(DESTDIR)$(MANDIR)/man1/"; \
	fi

# Removes what make install installed, whatever GENERATE was, and no
# directory: they may hold other packages' files.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/busd" "$(DESTDIR)$(BINDIR)/bus" \
		"$(DESTDIR)$(USERUNITDIR)/busd.service" "$(DESTDIR)$(USERUNITDIR)/busd.socket" \
		"$(DESTDIR)$(BASHCOMPDIR)/bus" "$(DESTDIR)$(ZSHCOMPDIR)/_bus" "$(DESTDIR)$(FISHCOMPDIR)/bus.fish" \
		"$(DESTDIR)$(MANDIR)/man1/bus.1" "$(DESTDIR)$(MANDIR)/man1/busd.1"

# Only what this project's targets make: bin/ (binaries, busbench,
# staticcheck). Go's build and test caches are the user's, shared with every
# other module, and stay.
clean:
	rm -rf $(BIN)
