"""The README's Python examples run as written, and an argmax survives pickling."""

import pickle
import re
from pathlib import Path

import numpy as np

import numba_pool as npool
from helpers import assert_same_bits

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_usage_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    # self-contained examples: NumPy, the PyTorch drop-in and the Dask module
    runnable = [b for b in blocks if "np.random" in b or "numba_pool.torch as" in b
                or "numba_pool.dask as" in b]
    assert len(runnable) >= 4, "README lost its usage examples"
    for block in runnable:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_starts_with_the_two_commands():
    head = README.read_text().split("## ")[0]
    assert "make test" in head and "make bench" in head


def test_argmax_pickles_for_multiprocessing():
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
    y, am = npool.max_pool2d(x, 2)
    am2 = pickle.loads(pickle.dumps(am))
    assert_same_bits(am2.offsets, am.offsets)
    assert_same_bits(npool.max_pool2d_backward(np.ones_like(y), am2),
                                  npool.max_pool2d_backward(np.ones_like(y), am))


def test_doctests_of_the_package_are_collected():
    """The docstring examples are tests: pytest's configuration collects them."""
    config = (README.parent / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1]
    assert re.search(r'^testpaths = \[.*"numba_pool".*\]$', config, re.M)
    assert re.search(r'^addopts = ".*--doctest-modules.*"$', config, re.M)
