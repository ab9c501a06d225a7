"""python -m numba_pool warmup: compiles into the on-disk cache that later processes use."""

import os
import subprocess
import sys

import numba
import pytest

from numba_pool.warmup import FAMILIES, warmup

CHECK_CACHE = """
import numpy as np, numba_pool as npool
from numba_pool import _driver, _threading
x = np.zeros((2, 9, 9, 8), np.int16)
for threshold in (2**62, 0):  # the kernels, then the parallel drivers
    _threading.PARALLEL_MIN_WORK = threshold
    y, am = npool.max_pool2d(x, 3, 1, 1)
    npool.max_pool2d_backward(np.ones_like(y), am)
for kernels in ([am._plan.fwd, am._plan.bwd], [_driver.drive]):
    print(sum(sum(k.stats.cache_hits.values()) for k in kernels),
          sum(sum(k.stats.cache_misses.values()) for k in kernels))
"""


def test_warmup_fills_the_cache_for_later_processes(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "numba_pool", "warmup", "--dtypes", "int16",
                           "--families", "small images", "--jobs", "1"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "[ 1/1] int16    backward, scatter (overlapping windows" in proc.stdout
    assert "1 kernel families compiled and cached" in proc.stdout
    assert any(tmp_path.rglob("*.nbi")), "nothing was written to the cache"
    counts = subprocess.run([sys.executable, "-c", CHECK_CACHE], capture_output=True,
                            text=True, env=env, check=True, timeout=300).stdout.split()
    kernel_hits, kernel_misses, driver_hits, driver_misses = map(int, counts)
    assert kernel_hits == 2 and kernel_misses == 0
    if numba.config.NUMBA_NUM_THREADS > 1:  # with one thread no driver runs
        assert driver_hits == 1 and driver_misses == 0  # one driver for every kernel


def test_warmup_errors():
    with pytest.raises(ValueError, match="dtypes: 'complex64'"):
        warmup(["complex64"], progress=None)
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        warmup(["float32"], jobs=0, progress=None)
    with pytest.raises(ValueError, match="families: none of"):
        warmup(["float32"], families=["nonexistent"], progress=None)
    proc = subprocess.run([sys.executable, "-m", "numba_pool", "warmup", "--dtypes", "bool"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'bool'" in proc.stderr


def test_cli_help_names_the_options():
    proc = subprocess.run([sys.executable, "-m", "numba_pool", "warmup", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--dtypes", "--jobs", "--families"):
        assert option in proc.stdout


def test_families_cover_every_kernel_selection():
    """Each family's calls land on the kernels its name promises (plans only: nothing
    is compiled here; test_warmup_fills_the_cache_for_later_processes runs calls)."""
    import numpy as np

    from numba_pool._plan import AvgPlan, forward_key

    from numba_pool import _avg_kernels, _kernels

    avg_kernels = set()
    for family, calls in FAMILIES.items():
        for call in calls:
            plan = call.plan(np.float32)
            averages = call.op in ("avg", "adaptive_avg")
            if averages:
                avg_kernels.add(plan.fwd)
            if call.op != "max":  # every rank in one family
                assert ("average" if averages else "unpooling") in family
                assert isinstance(plan, AvgPlan) == averages
                continue
            assert ("3-D" in family) == (call.rank == 3), (family, call)
            assert ("1-D" in family) == (call.rank == 1), (family, call)
            scatter = plan.backward_kind == "scatter"
            if "scatter" in family:
                assert scatter, (family, call)
            elif "gather" in family:
                assert not scatter, (family, call)
            assert (plan.backward_kind == "stride-1 gather") == ("stride-1" in family)
            if "tap gather" in family:
                assert plan.backward_kind == "tap gather", (family, call)
            if "plane gather" in family:
                assert plan.backward_kind == "plane gather", (family, call)
            elif "backward" in family:  # (forward families' 1-channel calls may take it)
                assert plan.backward_kind != "plane gather", (family, call)
            if "forward" in family and "any window" not in family:
                assert forward_key(plan.geom, plan.C, plan.cdtype)[2] > 0, (family, call)
            blocks = plan.fwd is _kernels.plane_block_forward_kernel()
            assert blocks == ("channels-first planes" in family), (family, call)
    assert avg_kernels == {_avg_kernels.avg_forward_kernel(), _avg_kernels.global_plane_kernel(),
                           _avg_kernels.adaptive_plane_kernel(),
                           _avg_kernels.adaptive_plane_block_kernel(),
                           _avg_kernels.stride1_plane_kernel()}
