# Each target builds its own virtual environment from nothing: torch (CPU build) first, so that
# pip never pulls a multi-GB CUDA build on its own, then the project. See README for CUDA.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin

.PHONY: demo test bench gpu-check clean

$(BIN)/tstam: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/tstam
	$(BIN)/tstam demo $(ARGS)

test: $(BIN)/tstam
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(BIN)/tstam
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# On a CUDA machine whose python3 already has a CUDA torch: runs from the source tree, no venv, no
# registry needed (the GPU box needs PyTorch, NumPy, PyYAML, tqdm, core OpenCV, onnx(runtime), safetensors).
GPU_PYTHON ?= python3
gpu-check:
	PYTHONPATH=src $(GPU_PYTHON) benchmarks/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
