# serpent-oci: `make deps` installs the system parts (as root), `make check` runs the whole
# suite (deps, vet, gofmt, tests), `make bench` prints speed ratios against peer tools.

GO       ?= go
BIN      ?= bin/serpent-oci
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD = -trimpath -ldflags "-X main.version=$(VERSION)"
# The platform and profile `make bootstrap` builds (PROFILE=full: the LLVM toolchain in
# stage2); CI_PLATFORMS are those CI builds from a cold store.
PLATFORM ?= linux/arm64
PROFILE ?= small
# `make bench-bootstrap PROFILE=full ACCELERATOR=full/llvm-accel-for-linux-arm64` adds arm64's
# stage2.5 and stage3 accelerated (issue 17) to the table.
ACCELERATOR ?=
CI_PLATFORMS ?= linux/amd64 linux/arm64
# What `make repro` builds twice from cold and compares; CI_REPRO_PLATFORMS are those CI checks
# (against the store bootstrap-check just built cold, so only the second build costs time).
REPRO_STAGE ?= stage3
REPRO_PLATFORMS ?= linux/amd64 linux/arm64
CI_REPRO_PLATFORMS ?= linux/arm64

# The tree `make bench` writes as a layer: at least 300 MB of real files (/usr/share: ~650 MB).
BENCH_TREE ?= /usr/share

.PHONY: all build deps check vet fmt test flake bench demo seed bootstrap bootstrap-all bootstrap-check full-profile-check repro bench-bootstrap bench-go clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/serpent-oci

deps:
	bash .ci/deps.sh

vet:
	$(GO) vet ./...
	$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

# Every test in a new order each run, so that a test that leans on another's leftovers fails.
test:
	$(GO) test -count=1 -shuffle=on -timeout 30m ./...

# The suite N times over (each shuffled), listing every test that ever failed: `make flake N=20`.
N ?= 20
flake: deps
	GO=$(GO) .ci/flake.sh $(N)

check: deps vet test

# The seed image stage1 runs in, from Debian's packages (once per store; build makes it when
# a stage needs it, so this is only for making it beforehand).
seed: build
	stages/seed/make-seed.sh $(BIN) --profile $(PROFILE)

# The main job: the Serpent OS bootstrap, stage1 → stage2 → stage2.5 → stage3.
bootstrap: deps build
	$(BIN) build stage3 --profile $(PROFILE) --platform $(PLATFORM)

bootstrap-all: deps build
	$(BIN) build stage3 --profile $(PROFILE) --platform linux/amd64,linux/arm64

# stage3 from a cold store of its own, with the checks CI runs on the result.
bootstrap-check: build
	PROFILE=$(PROFILE) REPRO_PLATFORMS="$(CI_REPRO_PLATFORMS)" .ci/bootstrap-check.sh $(BIN) $(CI_PLATFORMS)

# The full profile checked without its hours-long build (CI): it plans for CI_PLATFORMS, and in a
# cold store, for each, the host tools of the LLVM cross build build and the cross build configures.
full-profile-check: build
	.ci/full-profile-check.sh $(BIN) $(CI_PLATFORMS)

# REPRO_STAGE for each of REPRO_PLATFORMS built twice from cold, in two stores, a minute apart:
# every stage's digest must be equal (PROFILE=full: the second starts with the first's ccache).
repro: deps build
	PROFILE=$(PROFILE) .ci/repro.sh $(BIN) $(REPRO_STAGE) $(REPRO_PLATFORMS)

# Every stage rebuilt for both platforms: stage times, the engine's share, emulated/native.
bench-bootstrap: build
	PROFILE=$(PROFILE) ACCELERATOR=$(ACCELERATOR) .ci/bench-bootstrap.sh $(BIN)

# The three-stage test set, built with the binary.
demo: build
	stages/testdata/demo.sh $(BIN)

bench: bench-go bench-bootstrap

# The benchmarks of the Go packages alone (minutes, not the bootstrap's half hour).
bench-go:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./oci/layer/ ./builder/ ./builder/build/ -args -bench.tree=$(BENCH_TREE)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 20m ./oci/registry/

clean:
	rm -rf bin
