# chaos and kvnode. `make run` is the main job, `make test` is what CI runs.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Seeds for the simulator sweeps in `make test`; raise for a longer hunt.
SIM_SEEDS ?= 200
export CGO_ENABLED := 0

.PHONY: all build test test-short bench run sim lint clean fuzz

all: build

build:
	$(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/chaos ./cmd/chaos
	$(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/kvnode ./cmd/kvnode

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# The whole suite, Docker integration tests included (they skip with a
# message when no Docker engine is reachable, and fail under CI=true).
test: lint build
	CHAOS_SIM_SEEDS=$(SIM_SEEDS) $(GO) test -count=1 -timeout 40m $(PKGS)

# Unit and simulator tests only.
test-short: lint
	$(GO) test -short -count=1 $(PKGS)

# The Go benchmarks, then short `chaos bench` runs on a throwaway loopback
# cluster (BENCH_FLAGS to change them, e.g. BENCH_FLAGS='--clients 64').
BENCH_FLAGS ?= --clients 16 --duration 5s
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m $(PKGS)
	$(BIN)/chaos bench put $(BENCH_FLAGS)
	$(BIN)/chaos bench get $(BENCH_FLAGS)

# Short fuzzing of every parser and decoder (FUZZTIME per target).
FUZZTIME ?= 20s
fuzz:
	@$(GO) list -f '{{.ImportPath}}' $(PKGS) | while read pkg; do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# The main job: a partition test against a kvnode cluster in Docker, on
# chaos run's defaults. chaos finds bin/kvnode next to itself.
run: build
	$(BIN)/chaos run --nemesis partition

# The same partition test in the deterministic simulator: 500 seeds of 1000
# ops each, every failing seed printed with its replay command.
sim: build
	$(BIN)/chaos sim --nemesis partition

clean:
	rm -rf $(BIN)
