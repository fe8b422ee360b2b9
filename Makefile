# Each target builds its own virtual environment from nothing: torch (CPU build) first, so that
# pip never pulls a multi-GB CUDA build on its own, then the project. See README for CUDA.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin

.PHONY: demo test check lint bench gpu-check gpu-session gpu-wheels clean browser

$(BIN)/tstam: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/tstam
	$(BIN)/tstam demo $(ARGS)

# The whole suite (what CI runs, .ci/run): the lint, then every test, the slow ones included.
test: $(BIN)/tstam browser lint
	$(BIN)/python -m pytest -q $(ARGS)

# The fast tier, while working (about a minute on 2 cores): the lint, then the tests not marked
# slow, stopping at the first failure; none of them takes 10 s, so one that runs 120 s hangs.
# `make test` runs the rest: end-to-end runs in subprocesses, DDP, the demo, ablate, ONNX export,
# the browser, killed and resumed runs.
check: $(BIN)/tstam lint
	$(BIN)/python -m pytest -q -x -m "not slow" --timeout 120 $(ARGS)

lint: $(BIN)/tstam
	$(BIN)/ruff check src tests benchmarks docs

# The browser test of `tstam serve` drives Debian's chromium through Debian's chromedriver (never
# a downloaded browser). Installed here when missing and we are root (CI is); otherwise that test
# fails and says what to install.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium and chromium-driver for the browser test"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	      || echo "warning: apt-get could not install chromium chromium-driver; the browser test will fail"; \
	  else \
	    echo "warning: /usr/bin/chromium or /usr/bin/chromedriver is missing and apt-get cannot run here;" \
	         "the browser test will fail (apt-get install -y chromium chromium-driver as root)"; \
	  fi; \
	fi

bench: $(BIN)/tstam
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# On a CUDA machine whose python3 already has a CUDA torch: runs from the source tree, no venv, no
# registry needed (the GPU box needs PyTorch, NumPy, PyYAML, tqdm, core OpenCV, onnx(runtime), safetensors).
GPU_PYTHON ?= python3
gpu-check:
	PYTHONPATH=src $(GPU_PYTHON) benchmarks/gpu_check.py $(ARGS)

# The one command of a session with a GPU (docs/gpu.md): results as markdown into $OUT, else gpu-results/.
gpu-session:
	GPU_PYTHON=$(GPU_PYTHON) benchmarks/gpu_session.sh $(RESULTS)

# PyAV as a wheel for the GPU machine's Python 3.12 (its image has no PyAV and no registry); run here.
gpu-wheels: $(BIN)/tstam
	mkdir -p .whl && $(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  "av==$$($(BIN)/python -c 'import av; print(av.__version__)')"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
