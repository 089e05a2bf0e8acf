# Two set-up commands: `make demo` and `make test`. Both start from nothing but Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check --no-input --progress-bar on

.PHONY: demo test fuzz lint install install-dev system-tools clean

$(BIN)/python:
	@echo "==> creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	@echo "==> installing imgclf and its dependencies (NumPy, numba, scikit-learn, matplotlib, ...)"
	$(PIP) -e .

install-dev: $(BIN)/python
	@echo "==> installing imgclf with every extra (faiss, hnsw, dask, serve) and the dev tools"
	$(PIP) -e '.[dev]'

demo: install
	@echo "==> imgclf demo: choosing, training and testing k-NN and a linear classifier on digits"
	$(BIN)/imgclf demo

lint: install-dev
	@echo "==> linting (ruff)"
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Debian packages the tests use: Chromium and its driver (the report and web-page tests
# open pages headless) and wrk (HTTP load tests against 127.0.0.1). Installed when missing.
SYSTEM_TOOLS := chromium:chromium chromedriver:chromium-driver wrk:wrk
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages the tests use:$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
			>/dev/null 2>&1 || echo "could not install$$missing; the tests that need them will be skipped"; \
	fi

test: lint system-tools
	@echo "==> running the test suite (pytest)"
	$(BIN)/python -m pytest

# More fuzz cases per reader than `make test` runs (each under a 1 GiB memory cap and 5 s).
FUZZ_CASES ?= 5000
fuzz: install-dev
	@echo "==> fuzzing every reader of untrusted bytes, $(FUZZ_CASES) cases each"
	IMGCLF_FUZZ_CASES=$(FUZZ_CASES) $(BIN)/python -m pytest tests/fuzz -s -q

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
