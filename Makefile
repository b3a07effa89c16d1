# chaos and kvnode. `make run` is the main job, `make test` is what CI runs.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Seeds for the simulator sweeps in `make test`; raise for a longer hunt.
SIM_SEEDS ?= 200
export CGO_ENABLED := 0

.PHONY: all build test test-short bench bench-check run sim lint clean fuzz

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

# A whole `chaos check` of generated valid list-append histories
# (BENCH_TXNS transactions each): wall and CPU time, txn/s and peak RSS per
# transaction, from /usr/bin/time. BENCH_BASE=path/to/another/chaos checks
# the same files with that binary too, for a ratio within one run.
BENCH_TXNS ?= 100000 1000000
BENCH_BASE ?=
BENCH_DIR  := $(shell mktemp -d -u /tmp/chaos-bench-check.XXXXXX)
bench-check: build
	@mkdir -p $(BENCH_DIR)
	@for n in $(BENCH_TXNS); do \
		$(GO) run ./checker/elle/gen/genhistory -txns $$n -o $(BENCH_DIR)/history-$$n.jsonl || exit 1; \
		for bin in $(BENCH_BASE) $(BIN)/chaos; do \
			/usr/bin/time -f '%e %U %S %M' -o $(BENCH_DIR)/time $$bin check --workload list-append $(BENCH_DIR)/history-$$n.jsonl >/dev/null || exit 1; \
			read secs user sys kib < $(BENCH_DIR)/time; \
			awk -v b=$$bin -v n=$$n -v s=$$secs -v c=$$user+$$sys -v k=$$kib 'BEGIN { split(c, cs, "+"); cpu = cs[1] + cs[2]; printf "bench-check %s txns=%d: %.2f s (%.0f txn/s), cpu %.2f s (%.0f txn/cpu-s), peak RSS %.1f MiB = %.0f B/txn\n", b, n, s, n/s, cpu, n/cpu, k/1024, k*1024/n }'; \
		done; \
	done
	@rm -rf $(BENCH_DIR)

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
