"""numba_pool.dask: bit for bit the in-memory functions, for any chunking,
on Dask's threaded scheduler, on a LocalCluster of processes and from Zarr."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dask
import dask.array as da

import numba_pool as npool
import numba_pool.dask as nd
from numba_pool.dask import _axis_blocks, aligned_chunks
from numba_pool.geometry import axis_geometry, window_block
from helpers import assert_same_bits

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}
SIDES = {1: (1, 40), 2: (1, 18), 3: (1, 9)}


@st.composite
def chunking(draw, n):
    """Chunk sizes of an axis of length n: ones, ragged, or one chunk."""
    kind = draw(st.sampled_from(["ragged", "ones", "even", "whole"]))
    if kind == "whole" or n == 1:
        return (n,)
    if kind == "ones":
        return (1,) * n
    if kind == "even":
        c = draw(st.integers(1, n))
        return (c,) * (n // c) + ((n % c,) if n % c else ())
    sizes, left = [], n
    while left:
        c = draw(st.integers(1, left))
        sizes.append(c)
        left -= c
    return tuple(sizes)


@st.composite
def cases(draw):
    rank = draw(st.sampled_from([1, 2, 3]))
    fmt = draw(st.sampled_from(FORMATS[rank]))
    spatial = [draw(st.integers(*SIDES[rank])) for _ in range(rank)]
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    shape = [n] + spatial + [c] if fmt[-1] == "C" else [n, c] + spatial
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16, np.uint8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-5, 6, shape).astype(np.float64)
    if np.dtype(dtype).kind == "f":
        x = x + rng.random(shape)
        x[rng.random(shape) < 0.03] = np.nan
    x = x.astype(dtype) if np.dtype(dtype).kind == "f" else np.abs(x).astype(dtype)
    chunks = tuple(draw(chunking(s)) for s in shape)
    k = [draw(st.integers(1, 4)) for _ in range(rank)]
    params = dict(
        pool_size=tuple(k),
        strides=tuple(draw(st.integers(1, 4)) for _ in range(rank)),
        padding=draw(st.sampled_from(["valid", "same", "int", "pairs"])),
        dilation=tuple(draw(st.integers(1, 2)) for _ in range(rank)),
        ceil_mode=draw(st.booleans()),
        data_format=fmt,
    )
    if params["padding"] == "int":
        params["padding"] = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    elif params["padding"] == "pairs":
        params["padding"] = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2)))
                                  for _ in range(rank))
    return rank, x, chunks, params


def _compare(fn_mem, fn_dask, x, chunks, params, scheduler="threads"):
    try:
        expected = fn_mem(x, **params)
    except ValueError as exc:  # the same error, when the graph is built
        with pytest.raises(ValueError) as ours:
            fn_dask(da.from_array(x, chunks=chunks), **params)
        assert str(ours.value) == str(exc)
        return False
    if isinstance(expected, tuple):
        expected = expected[0]
    lazy = fn_dask(da.from_array(x, chunks=chunks), **params)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    assert_same_bits(lazy.compute(scheduler=scheduler), expected, "dask result")
    return True


@settings(max_examples=150)
@given(cases())
def test_max_pool_any_chunking(case):
    rank, x, chunks, params = case
    _compare(getattr(npool, f"max_pool{rank}d"), getattr(nd, f"max_pool{rank}d"), x, chunks,
             params)


@settings(max_examples=150)
@given(cases(), st.sampled_from([None, True, False]), st.sampled_from([None, 3]))
def test_avg_pool_any_chunking(case, cip, override):
    rank, x, chunks, params = case
    params = dict(params, count_include_pad=cip, divisor_override=override)
    _compare(getattr(npool, f"avg_pool{rank}d"), getattr(nd, f"avg_pool{rank}d"), x, chunks,
             params)


@settings(max_examples=300)
@given(st.integers(1, 60), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3),
       st.integers(0, 2), st.booleans(), st.data())
def test_blocks_read_own_chunk_plus_halo(n, k, s, d, p, ceil, data):
    """Every output block reads its (stride-aligned) chunk and at most
    (k - 1) * d + 1 - s elements past it; the blocks tile the output."""
    p = min(p, k // 2)
    try:
        axis = axis_geometry(n, k, s, d, (p, p), ceil)
    except ValueError:
        return
    chunks = aligned_chunks(axis, data.draw(chunking(n)))
    assert sum(chunks) == n and min(chunks) >= 1
    blocks = _axis_blocks(axis, chunks)
    assert blocks[0][0] == 0 and blocks[-1][1] == axis.out
    assert all(b0[1] == b1[0] for b0, b1 in zip(blocks, blocks[1:]))
    halo = max(0, (k - 1) * d + 1 - s)
    bounds = np.cumsum((0,) + chunks)
    for o0, o1 in blocks:
        a, b, block = window_block(axis, o0, o1)
        j = int(np.searchsorted(bounds, max(int(axis.start[o0]), 0), side="right")) - 1
        assert bounds[j] <= a and b <= bounds[j + 1] + halo
        assert block.out == o1 - o0 and block.size == b - a
        assert np.array_equal(block.counts, axis.counts[o0:o1])
        assert np.array_equal(block.padded_counts, axis.padded_counts[o0:o1])


def test_window_block_rejects_bad_ranges():
    axis = axis_geometry(10, 3, 2, 1, (1, 1), False)
    for o0, o1 in ((3, 3), (-1, 2), (0, 99)):
        with pytest.raises(ValueError, match="window_block"):
            window_block(axis, o0, o1)


def _input_chunks_read(y, source_name):
    """For every output key of ``y``: the keys of layer ``source_name`` it
    depends on (transitively)."""
    graph = dict(y.__dask_graph__())
    memo = {}

    def reads(key):
        if key not in memo:
            found = set()
            for dep in dask.core.get_dependencies(graph, key):
                found |= {dep} if isinstance(dep, tuple) and dep[0] == source_name else reads(dep)
            memo[key] = found
        return memo[key]

    return {key: reads(key) for key in dask.core.flatten(y.__dask_keys__())}


def test_blocks_depend_on_their_own_chunks_only():
    x = da.ones((1, 512, 384, 1), chunks=(1, 128, 128, 1), dtype=np.float32)
    # k = s = 2: every output block reads exactly its own input chunk
    y = nd.max_pool2d(x, 2)
    assert y.chunks == ((1,), (64,) * 4, (64,) * 3, (1,))
    reads = _input_chunks_read(y, x.name)
    assert all(len(r) == 1 for r in reads.values())
    assert {next(iter(r))[1:] for r in reads.values()} == {
        (0, i, j, 0) for i in range(4) for j in range(3)}
    # k = 3, s = 2: the halo reaches into the next chunk only
    reads = _input_chunks_read(nd.avg_pool2d(x, 3, 2), x.name)
    for key, r in reads.items():
        i, j = key[2], key[3]
        assert {c[1:] for c in r} <= {(0, a, b, 0) for a in (i, i + 1) for b in (j, j + 1)}
    assert (y.compute(scheduler="sync") == 1).all()


def test_errors_at_graph_build_time():
    x = da.zeros((1, 8, 8, 1), chunks=4)
    with pytest.raises(TypeError, match="dask.array.Array.*numba_pool.max_pool2d"):
        nd.max_pool2d(np.zeros((1, 8, 8, 1)), 2)
    with pytest.raises(ValueError, match="pool_size"):
        nd.max_pool2d(x, 20)
    with pytest.raises(ValueError, match="padding"):
        nd.avg_pool2d(x, 2, padding=((5, 5), (0, 0)))
    with pytest.raises(ValueError, match="data_format"):
        nd.max_pool2d(x, 2, data_format="NCWH")
    with pytest.raises(ValueError, match="4-D"):
        nd.max_pool2d(da.zeros((8, 8), chunks=4), 2)
    with pytest.raises(TypeError, match="bool"):
        nd.max_pool2d(x.astype(bool), 2)
    with pytest.raises(ValueError, match="divisor_override"):
        nd.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="threads_per_task"):
        nd.max_pool2d(x, 2, threads_per_task=0)
    unknown = da.zeros((8, 5, 1), chunks=4)[da.zeros(8, chunks=4) > -1]  # shape (nan, 5, 1)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        nd.max_pool1d(unknown, 2)


@pytest.mark.parametrize("op", ["max", "mean"])
def test_pyramid_levels_are_successive_poolings(op):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1000, (3, 45, 70)).astype(np.uint16)
    levels = nd.pyramid(da.from_array(data, chunks=(2, 16, 23)), 3, op=op, axes=(1, 2))
    current = data
    for level in levels:
        planes = current.reshape((-1, 1) + current.shape[1:])
        if op == "max":
            expected = npool.max_pool2d(planes, 2, ceil_mode=True, data_format="NCHW")[0]
        else:
            expected = npool.avg_pool2d(planes, 2, ceil_mode=True, count_include_pad=False,
                                        data_format="NCHW")
        expected = expected.reshape(current.shape[:1] + expected.shape[2:])
        got = level.compute()
        assert_same_bits(got, expected, f"pyramid level {level.shape}")
        current = expected
    assert [lvl.shape for lvl in levels] == [(3, 23, 35), (3, 12, 18), (3, 6, 9)]


def test_pyramid_axes_in_the_middle():
    rng = np.random.default_rng(4)
    data = rng.standard_normal((5, 20, 4)).astype(np.float32)  # (Y, X, C): pool Y and X
    got = nd.pyramid(da.from_array(data, chunks=(3, 7, 2)), 1, axes=(0, 1))[0].compute()
    expected = npool.max_pool2d(data[None], 2, ceil_mode=True)[0][0]
    assert_same_bits(got, expected, "pyramid (Y, X, C)")


def test_pyramid_errors():
    x = da.zeros((8, 8), chunks=4)
    with pytest.raises(TypeError):
        nd.pyramid(np.zeros((8, 8)), 1)
    with pytest.raises(ValueError, match="op"):
        nd.pyramid(x, 1, op="median")
    with pytest.raises(ValueError, match="levels"):
        nd.pyramid(x, -1)
    with pytest.raises(ValueError, match="factor"):
        nd.pyramid(x, 1, factor=0)
    with pytest.raises(ValueError, match="axes"):
        nd.pyramid(x, 1, axes=(0, 0))


def test_zarr_in_zarr_out(tmp_path):
    zarr = pytest.importorskip("zarr")  # installed by the dev extra: never skipped in make test
    rng = np.random.default_rng(5)
    data = rng.standard_normal((2, 200, 150, 3)).astype(np.float32)
    da.from_array(data, chunks=(1, 64, 64, 3)).to_zarr(str(tmp_path / "in.zarr"))
    source = da.from_zarr(str(tmp_path / "in.zarr"))
    # windows not tiling the chunks give irregular output chunks: Zarr wants regular ones
    nd.max_pool2d(source, 3, 2, 1).rechunk((1, 32, 32, 3)).to_zarr(str(tmp_path / "max.zarr"))
    nd.avg_pool2d(source, 2).to_zarr(str(tmp_path / "avg.zarr"))
    assert_same_bits(np.asarray(zarr.open_array(str(tmp_path / "max.zarr"))),
                     npool.max_pool2d(data, 3, 2, 1)[0], "max from Zarr")
    assert_same_bits(np.asarray(zarr.open_array(str(tmp_path / "avg.zarr"))),
                     npool.avg_pool2d(data, 2), "avg from Zarr")


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")  # dev extra: never skipped in make test
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@settings(max_examples=20)
@given(cases(), st.sampled_from(["max", "avg"]))
def test_any_chunking_on_a_local_cluster(cluster_client, case, op):
    rank, x, chunks, params = case
    _compare(getattr(npool, f"{op}_pool{rank}d"), getattr(nd, f"{op}_pool{rank}d"), x, chunks,
             params, scheduler=cluster_client.get)


def test_local_cluster_of_processes(cluster_client):
    rng = np.random.default_rng(6)
    x3 = rng.standard_normal((1, 12, 30, 26, 4)).astype(np.float32)
    x2 = rng.integers(0, 255, (2, 3, 61, 47)).astype(np.uint8)
    jobs = [
        (nd.max_pool3d(da.from_array(x3, chunks=(1, 5, 7, 9, 2)), 3, 2, 1),
         npool.max_pool3d(x3, 3, 2, 1)[0]),
        (nd.avg_pool3d(da.from_array(x3, chunks=(1, 4, 16, 13, 4)), 2, ceil_mode=True),
         npool.avg_pool3d(x3, 2, ceil_mode=True)),
        (nd.avg_pool2d(da.from_array(x2, chunks=(1, 2, 20, 11)), 3, 1, "same",
                       data_format="NCHW"),
         npool.avg_pool2d(x2, 3, 1, "same", data_format="NCHW")),
        (nd.pyramid(da.from_array(x2, chunks=(1, 3, 16, 16)), 2, op="max")[1],  # Y, X
         None),
    ]
    results = cluster_client.compute([j[0] for j in jobs], sync=True)
    assert len(cluster_client.scheduler_info()["workers"]) == 2
    for (lazy, expected), got in zip(jobs, results):
        if expected is not None:
            assert_same_bits(got, expected, f"LocalCluster {lazy.shape}")
    planes = x2.reshape(6, 1, 61, 47)
    level1 = npool.max_pool2d(planes, 2, ceil_mode=True, data_format="NCHW")[0]
    level2 = npool.max_pool2d(level1, 2, ceil_mode=True, data_format="NCHW")[0]
    assert_same_bits(results[3], level2.reshape(2, 3, 16, 12), "LocalCluster pyramid")
