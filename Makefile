# iamport-proxy. `make demo` and `make test` do all set-up themselves on a
# fresh Debian machine (they install missing Debian packages with apt-get).

SWIFT ?= swift
VENV ?= .venv
FUZZ_SECONDS ?= 60

.PHONY: all deps build release test test-py demo run fuzz fuzz-ci bench soak clean

all: build

deps:
	@.ci/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --static-swift-stdlib

# Everything CI runs: unit, in-process and end-to-end tests (the end-to-end
# ones run the built binaries), the real Python SDK, and a short fuzz pass.
test: deps build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(MAKE) --no-print-directory fuzz-ci
	$(SWIFT) build -c release --static-swift-stdlib --product iamport-proxy
	$(MAKE) --no-print-directory test-py

$(VENV)/ready: Tests/Python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r Tests/Python/requirements.txt
	touch $@

# The real Python SDK against the binaries, and the Docker files' checks.
test-py: $(VENV)/ready
	$(VENV)/bin/python -m pytest -q Tests/Python

demo: build
	@.ci/demo.sh

# Runs the proxy for real: IAMPORT_API_KEY and IAMPORT_API_SECRET must be set.
run: release
	.build/release/iamport-proxy

fuzz: deps
	Tests/Fuzz/fuzz.sh $(FUZZ_SECONDS)

fuzz-ci: deps
	Tests/Fuzz/fuzz.sh 20

# iamport-proxy (default settings) beside nginx and HAProxy, GET and POST, as
# ratios over interleaved rounds; BENCH_BASELINE=/path/to/old/iamport-proxy adds a
# before; BENCH_SECONDS=2 BENCH_ROUNDS=2 make bench for a quick run.
bench:
	WITH_BENCH=1 .ci/install-deps.sh
	Tests/Bench/bench.sh

# Minutes of load, then a burst of new connections; exits 1 when a target
# is missed. SOAK_PHASE1=20 SOAK_PHASE2=10 make soak for a quick run.
soak:
	WITH_BENCH=1 .ci/install-deps.sh
	Tests/Bench/soak.sh

clean:
	rm -rf .build .build-* $(VENV)
