# `make test` and `make bench` set themselves up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: test bench clean

$(VENV)/.dev-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# TensorFlow is the second oracle (tests/test_tensorflow.py) and a bench
	# contender. Required: a failed install fails here. Platforms without a
	# TensorFlow wheel: NUMBA_POOL_SKIP_TENSORFLOW=1 make test (reported in the summary).
	if [ "$$NUMBA_POOL_SKIP_TENSORFLOW" != 1 ]; then $(PY) -m pip install --quiet 'tensorflow-cpu>=2.16'; fi
	touch $@

$(VENV)/.bench-installed: $(VENV)/.dev-installed
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

# Two or more processes (up to 4): the suite's time is mostly Numba compiling
# kernels, one process at a time each, so two processes halve it on 2 cores
# (13.3 -> 6.4 min measured). Each test still runs whole in one process.
test: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal

bench: $(VENV)/.bench-installed
	$(PY) bench/grid.py     # the parameter grid, 1 and 2 threads -> bench/grid.md, grid.png
	$(PY) bench/jit.py      # cold/warm first calls, compile time per family -> bench/jit.md
	$(PY) bench/family.py   # 1-D/3-D, average, adaptive and global pooling vs PyTorch -> bench/family.md
	$(PY) bench/torch_step.py  # a training step, PyTorch's pooling vs numba_pool.torch -> bench/torch_step.md
	$(PY) bench/dask_zarr.py   # 8 GB Zarr arrays, numba_pool.dask vs dask.array.coarsen -> bench/dask_zarr.md
	# Last: the fixed cases (pytest-benchmark), then bench/results.md with every
	# report above (each stamped with the time it was written).
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks bench/.raw
