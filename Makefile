# Each target builds its own virtual environment from nothing: torch (CPU build) first, so that
# pip never pulls a multi-GB CUDA build on its own, then the project. See README for CUDA.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin

.PHONY: demo test bench gpu-check clean browser

$(BIN)/tstam: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/tstam
	$(BIN)/tstam demo $(ARGS)

test: $(BIN)/tstam browser
	$(BIN)/python -m pytest -q $(ARGS)

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

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
