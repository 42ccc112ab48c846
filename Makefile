# orderflow — see README.md. Every target works on a fresh machine with Go,
# a JDK 17+ and Maven; the test infrastructure installs what else it needs.

GO        ?= go
INFRA     := $(GO) run ./test/infra/cmd/infra
PKGS      := ./...
TESTFLAGS ?= -race -timeout 30m

.PHONY: all build test lint bench infra-up infra-down clean run fuzz chaos

all: build

## build: bin/orderflow as the image builds it: no cgo (no C compiler run:
## pebble's cgo zstd is the slowest part of a first build), paths trimmed
## (the build cache serves any checkout), the VCS revision stamped for
## --version.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -o bin/orderflow ./cmd/orderflow

## test: lint, a bounded fuzz run, then every test (unit and integration) with
## the real infrastructure (Kafka 4.x, Redis, stripe-mock) started and stopped
## around it: in containers on a Docker engine found or started (root on
## Linux), else as plain processes; ORDERFLOW_TEST_INFRA=docker|process forces
## one (README: Tests).
test: lint fuzz
	$(INFRA) run -- $(GO) test $(TESTFLAGS) $(PKGS)

## lint: gofmt and go vet must be clean.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: side-by-side benchmarks (not part of test); writes bench/results/.
bench:
	$(INFRA) run -- $(GO) run ./test/bench $(BENCHFLAGS)

## infra-up / infra-down: start or stop the test infrastructure in the
## background; addresses go to test/.infra.env (set -a; . test/.infra.env; set +a).
infra-up:
	$(INFRA) up

infra-down:
	$(INFRA) down

clean: infra-down
	rm -rf bin

## run: the whole pipeline in one process (embedded Kafka, gateway, processor,
## provider simulator), data under ./var. Then: ./bin/orderflow send-test-event
run: build
	./bin/orderflow dev $(ARGS)

## fuzz: run each fuzz target for FUZZTIME (part of test; needs no
## infrastructure). Failing inputs are saved under the package's testdata/fuzz.
## A run that fails with nothing but "context deadline exceeded" and no
## failing input is Go's fuzzing race at the end of -fuzztime (go.dev/issue/75804,
## fixed in Go 1.27): it is run once more; any other failure fails at once.
FUZZTIME ?= 12s
FUZZ_TARGETS := FuzzHandler:./gateway FuzzVerifySignature:./gateway \
	FuzzDecodeEnvelope:./topics FuzzDecodeState:./processor
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		for try in 1 2; do \
			echo "fuzz $${t%%:*} ($${t#*:}, $(FUZZTIME))"; \
			if $(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) "$${t#*:}" > .fuzz.log 2>&1; then \
				cat .fuzz.log; break; \
			fi; \
			cat .fuzz.log; \
			if [ $$try = 1 ] && grep -q 'context deadline exceeded' .fuzz.log && ! grep -q 'Failing input written' .fuzz.log; then \
				echo "fuzz: the end-of-fuzztime race of go.dev/issue/75804, nothing found; running again"; \
				continue; \
			fi; \
			rm -f .fuzz.log; exit 1; \
		done; \
	done; rm -f .fuzz.log

## chaos: the long version of every fault scenario (processor kills, rolling
## restart, broker and Redis outages, provider faults, gateway kills) against
## real processes; writes test/chaos/results.md. The short versions run in test.
CHAOSFLAGS ?=
chaos:
	$(INFRA) run -- $(GO) test -race=false -count=1 -v -run TestChaos -timeout 90m ./test/chaos -chaos.full $(CHAOSFLAGS)
