# Tidepool: `make run` starts the server, `make test` runs the whole suite.

GO       ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN      := bin/tidepool
AGENT    := bin/tidepool-agent
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
ARGS     ?=
FUZZTIME ?= 60s
# Fuzz targets as package:Target, for `make fuzz`.
FUZZ_TARGETS := ./internal/model:FuzzDecodeSessionPool ./internal/model:FuzzParseResourceID \
                ./internal/auth:FuzzVerify ./internal/arm:FuzzRouter \
                ./internal/agent:FuzzResolvePath ./internal/template:FuzzExpression \
                ./internal/arm:FuzzDeploymentValidate ./internal/cli:FuzzWriteOutput \
                ./internal/rbac:FuzzMatchAction ./internal/dataplane:FuzzParseRPC \
                ./internal/agent/wire:FuzzReadFrame ./internal/agent/kernel:FuzzCapture

.PHONY: all deps build run test vet fuzz bench clean

all: build

# deps installs what the build and the tests need (Debian/Ubuntu packages).
deps:
	@scripts/install-deps.sh

# build produces the static binary and, next to it, the agent sandboxes run
# (the same `agent` command in a binary that starts three times faster).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tidepool
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(AGENT) ./cmd/tidepool-agent

# run starts tidepool serve with embedded defaults; pass flags with ARGS="...".
run: deps build
	./$(BIN) serve $(ARGS)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# test runs the whole suite with the race detector.
test: deps vet
	$(GO) test -race -count=1 -timeout 30m ./...

# bench runs `tidepool bench` as root: its own server with runc (and cold starts with
# crun and runsc where installed), Jupyter Server as the peer (Debian's jupyter-server and
# python3-ipykernel, installed if missing). Report in BENCH_OUT; flags with BENCH_ARGS="...".
BENCH_OUT  ?= bench-report
BENCH_ARGS ?=
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench: deps build
	@missing=""; for p in jupyter-server python3-ipykernel; do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; }; \
	fi
	$(SUDO) ./$(BIN) bench --out $(BENCH_OUT) $(BENCH_ARGS)

# fuzz runs each fuzz target for FUZZTIME.
fuzz:
	@for spec in $(FUZZ_TARGETS); do \
		pkg=$${spec%%:*}; target=$${spec##*:}; \
		echo "== $$pkg $$target"; \
		$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin bench-report
