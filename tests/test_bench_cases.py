"""Every benchmark case, at a small size, through every implementation the bench uses.

Keeps bench/ from rotting: the cases' parameters, the implementation adapters
and the traffic model must all still work, and numba_pool must still equal
the reference (and PyTorch) on each case's configuration.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import numba_pool as npool  # noqa: E402
from numba_pool import reference  # noqa: E402

from cases import CASES  # noqa: E402
from impls import applies, available, prepare, seed_forward, seed_max_pool_naive_backward, traffic_bytes  # noqa: E402,E501
from helpers import assert_same_bits


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_matches_reference(case):
    x = case.make_x(small=True)
    y, am = npool.max_pool2d(x, **case.kwargs)
    yr, amr = reference.max_pool2d(x, **case.kwargs)
    assert_same_bits(y, yr)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    assert_same_bits(npool.max_pool2d_backward(dy, am),
                                  reference.max_pool2d_backward(dy, amr))
    rd, wr = traffic_bytes(case)["fwd"]
    assert rd == np.prod(case.shape) * np.dtype(case.dtype).itemsize and wr > 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_matches_pytorch(case):
    import torch  # a required dev dependency: missing, this test fails
    x = case.make_x(small=True)
    y, am = npool.max_pool2d(x, **case.kwargs)
    xt = torch.from_numpy(x if case.data_format == "NCHW" else x.transpose(0, 3, 1, 2))
    xt.requires_grad_()
    yt = torch.nn.functional.max_pool2d(xt, case.pool_size, case.strides, case.padding)
    y_nchw = y if case.data_format == "NCHW" else y.transpose(0, 3, 1, 2)
    assert_same_bits(y_nchw, yt.detach().numpy())
    yt.backward(torch.ones_like(yt))
    dx = npool.max_pool2d_backward(np.ones_like(y), am)
    dx_nchw = dx if case.data_format == "NCHW" else dx.transpose(0, 3, 1, 2)
    assert_same_bits(dx_nchw, xt.grad.numpy())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_bench_adapter_runs(case):
    x = case.make_x(small=True)
    ran = 0
    for impl in available():
        if impl == "reference" or applies(impl, case):  # reference too, at this size
            fwd, bwd = prepare(impl, case, x)
            fwd()
            bwd()
            ran += 1
    assert ran >= 3


def test_seed_loops_adapter_is_the_seed():
    x = np.random.default_rng(3).standard_normal((2, 6, 8, 3)).astype(np.float32)
    y, am = npool.max_pool2d(x, 2)
    assert_same_bits(seed_forward(x, 2), y.astype(np.float64))
    dy = np.ones(y.shape, np.float32)
    assert_same_bits(seed_max_pool_naive_backward(dy, x, 2),
                                  npool.max_pool2d_backward(dy, am))


def test_grid_cells_report_and_heat_map(tmp_path):
    """bench/grid.py's grid, ratios, report and heat map on synthetic timings."""
    import grid

    cells = grid.cells()
    assert len(cells) == len({c.key for c in cells}) == 896
    assert {c.layout for c in cells} == {"NCHW", "NHWC"} and {c.channels for c in cells} == {1, 3, 64, 512}
    fake = {(lib, t): {c.key: {"fwd": 1.0, "bwd": 2.0 if lib == "numba_pool" else 1.0,
                               "out": 1000}
                       for c in cells}
            for lib in ("numba_pool", "pytorch") for t in (1, 2)}
    for t in (1, 2):  # 1 GB/s: every realistic floor is far above 2 ms, so nothing misses
        fake[("numba_pool", t)][grid.BANDWIDTH] = {"read_gbs": 1.0, "write_gbs": 1.0}
    rows = grid.ratios(fake, [1, 2], quick=False)
    text = grid.report(rows, [1, 2], "test machine")
    assert ("- realistic bwd: median 2.00×, worst 2.00×, 896 of 896 above 0.5×, 0 of them "
            "also above 1.3× the floor") in text
    assert "## realistic size: worst 40 of 1792 (0 miss the target)" in text
    for t in (1, 2):  # 1000 TB/s: the floor is ~0, every cell (all above 0.5x) misses
        fake[("numba_pool", t)][grid.BANDWIDTH] = {"read_gbs": 1e6, "write_gbs": 1e6}
    text = grid.report(grid.ratios(fake, [1, 2], quick=False), [1, 2], "test machine")
    assert "## realistic size: worst 40 of 1792 (1792 miss the target)" in text
    assert "- small fwd: median 1.00×, worst 1.00×, 0 of 896 above 1.0×" in text
    grid.heat_map(rows, tmp_path / "grid.png", [1, 2])
    assert (tmp_path / "grid.png").stat().st_size > 10_000


def test_results_md_carries_the_other_reports(tmp_path, monkeypatch):
    """bench/report.py embeds every other report of the run, tables cut to
    their first rows where asked, and says loudly when one is missing."""
    import report

    (tmp_path / "grid.md").write_text(
        "# Grid title\n\ntext\n\n| a | b |\n|---|---|\n" + "".join(f"| {i} | x |\n" for i in range(30))
        + "\nafter\n\n## section\n\n| c |\n|---|\n| 1 |\n")
    (tmp_path / "grid.png").write_bytes(b"png")
    (tmp_path / "jit.md").write_text("# JIT\n\n| s |\n|---|\n" + "| 1 |\n" * 20)
    monkeypatch.setattr(report, "HERE", tmp_path)
    text = "\n".join(report.other_reports())
    assert "### Grid title" in text and "From [grid.md](grid.md), written " in text
    assert "| 11 | x |" in text and "| 12 | x |" not in text  # 12 rows of 30 kept
    assert "after" in text and "### section" in text and "| 1 |" in text
    assert "![grid.md heat map](grid.png)" in text
    assert text.count("| 1 |\n") == 1 + 20  # jit.md kept whole
    for name in ("family.md", "torch_step.md", "dask_zarr.md"):
        assert f"### {name}: **missing** (its script did not run)" in text
