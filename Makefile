# serpent-oci: `make deps` installs the system parts (as root), `make check` runs the whole
# suite (deps, vet, gofmt, tests), `make bench` prints speed ratios against peer tools.

GO       ?= go
BIN      ?= bin/serpent-oci
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD = -trimpath -ldflags "-X main.version=$(VERSION)"
# The tree `make bench` writes as a layer: at least 300 MB of real files (/usr/share: ~650 MB).
BENCH_TREE ?= /usr/share

.PHONY: all build deps check vet fmt test bench demo clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/serpent-oci

deps:
	bash .ci/deps.sh

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

test:
	$(GO) test -count=1 -timeout 30m ./...

check: deps vet test

# Until the Serpent recipes land: build the three-stage test set with the binary.
demo: build
	stages/testdata/demo.sh $(BIN)

bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 60m ./oci/layer/ ./builder/ ./builder/build/ -args -bench.tree=$(BENCH_TREE)

clean:
	rm -rf bin
