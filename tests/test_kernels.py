"""Every compiled backend against the NumPy reference, kernel by kernel (no PyTorch needed).

Tolerance: norm-wise relative error max|fast - reference| / max|reference| <= 1e-9 in float64 and
1e-4 in float32 (float32 kernels use a rational tanh within 6e-7, tests/test_numerics.py).
"""
import numpy as np
import pytest

from fastrnn.kernels import _driver, available_backends, cell_kernels

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
RTOL = {np.float64: 1e-9, np.float32: 1e-4}
FAST_BACKENDS = [b for b in available_backends() if b != "reference"]


def _cython_builds():
    """``cython:<build>`` for every Cython build this CPU runs, when there is more than the one in use."""
    if "cython" not in FAST_BACKENDS:
        return []
    from fastrnn.kernels import _cython
    builds = _cython.runnable_builds()
    return [f"cython:{b}" for b in builds] if len(builds) > 1 else []


KERNEL_SETS = FAST_BACKENDS + _cython_builds()  # each Cython build checked on its own too


def kernels_of(cell, kernel_set):
    """``(forward, backward)`` of ``cell`` in a backend, or in one Cython build (``cython:avx2``)."""
    if not kernel_set.startswith("cython:"):
        return cell_kernels(cell, kernel_set)
    from fastrnn.kernels import _cython
    exported = _cython.fused_kernels(_cython.import_build(kernel_set.split(":")[1])).export()
    return exported[f"{cell}_forward"], exported[f"{cell}_backward"]

pytestmark = pytest.mark.skipif(not FAST_BACKENDS, reason="no compiled backend available")


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected))) / max(float(np.max(np.abs(expected))), 1e-30)


def problem(cell, dtype, steps, batch, inputs, hidden, ragged, with_final_grads, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)
    weights = tuple(cast(rng.uniform(-0.6, 0.6, shape))
                    for shape in ((G * hidden, inputs), (G * hidden, hidden), (G * hidden,), (G * hidden,)))
    lengths = rng.integers(1, steps + 1, size=batch) if ragged else np.full(batch, steps)
    lengths[-1] = 1 if ragged else steps
    x = cast(rng.standard_normal((steps, batch, inputs)))
    h0 = cast(rng.standard_normal((batch, hidden)))
    c0 = cast(rng.standard_normal((batch, hidden))) if cell == "lstm" else None
    grad_out = cast(rng.standard_normal((steps, batch, hidden)))
    final = lambda: cast(rng.standard_normal((batch, hidden))) if with_final_grads else None
    grad_h_n = final()
    grad_c_n = final() if cell == "lstm" else None
    return x, lengths.astype(np.int64), weights, h0, c0, grad_out, grad_h_n, grad_c_n


@pytest.mark.parametrize("backend", KERNEL_SETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("steps, batch, inputs, hidden, ragged, with_final_grads", [
    (1, 1, 1, 1, False, False),      # the smallest problem there is
    (9, 1, 3, 5, False, True),       # a batch of one (no batch split)
    (11, 13, 4, 7, True, True),      # ragged, batch larger than the thread count, odd sizes
    (6, 5, 2, 33, True, False),      # hidden size not a multiple of any vector width
    (9, 1, 3, 64, False, True),      # a batch of one with 2+ threads: hidden units split across them
    (5, 70, 3, 20, True, True),      # on 2 threads: blocks of 16 rows claimed in turn, the last one partial
    (4, 37, 130, 16, True, True),    # wide input: projected before the time loop (Numba); full and partial groups
    (3, 33, 8, 256, True, True),     # LSTM gate-gradient rows of 4 KiB: padded for the group tile (Numba)
    (2, 17, 64, 960, False, True),   # [x | h] rows of 4 KiB (float32) and 8 KiB: padded for the group tile
    (2, 17, 4, 1024, False, True),   # gate-gradient rows of 12 KiB and more (GRU) and 16 KiB (LSTM): padded
])
def test_backend_matches_reference(backend, dtype, cell, steps, batch, inputs, hidden, ragged,
                                   with_final_grads, monkeypatch):
    # These problems are too small for a batch split to pay (see the next test); split them anyway, so the
    # parallel paths are the ones checked here. One chunk is what the batches of one run.
    monkeypatch.setattr(_driver, "batch_split_pays", lambda *args: True)
    monkeypatch.setattr(_driver, "MIN_WEIGHT_BYTES_TO_PROJECT", 0)  # small weights: project wide inputs anyway
    x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(
        cell, dtype, steps, batch, inputs, hidden, ragged, with_final_grads)
    fast_forward, fast_backward = kernels_of(cell, backend)
    ref_forward, ref_backward = cell_kernels(cell, "reference")
    fast = fast_forward(x, lengths, weights, h0, c0)
    ref = ref_forward(x, lengths, weights, h0, c0)
    for got, want in zip(fast[:3], ref[:3]):
        if want is not None:
            assert got.dtype == dtype
            assert relative_error(got, want) <= RTOL[dtype]
    fast_grads = fast_backward(weights, fast[3], grad_out, grad_h_n, grad_c_n)
    ref_grads = ref_backward(weights, ref[3], grad_out, grad_h_n, grad_c_n)
    flat = lambda g: list(g[:3]) + list(g[3])
    for got, want in zip(flat(fast_grads), flat(ref_grads)):
        if want is not None:
            assert got.dtype == dtype
            assert relative_error(got, want) <= RTOL[dtype]


def test_inputs_are_projected_before_the_time_loop_only_when_wide_with_uncached_weights():
    weights = lambda gates, I, H: (np.empty((gates * H, I), np.float32), np.empty((gates * H, H), np.float32))
    assert _driver.projection_pays(*weights(4, 1024, 1024))  # 32 MB of weights: beyond the cache
    assert _driver.projection_pays(*weights(3, 2048, 1024))  # GRU, 36 MB
    assert not _driver.projection_pays(*weights(4, 512, 512))  # large LSTM: 8 MB stream from the cache
    assert not _driver.projection_pays(*weights(4, 256, 256))  # medium's second layer: 2 MB
    assert not _driver.projection_pays(*weights(4, 16, 4096))  # narrow input: little to gain
    assert not _driver.projection_pays(*weights(3, 1024, 1001))  # 3H not whole panels


def test_a_batch_split_must_save_enough_weight_streaming():
    """Rows share a pass over the weights four at a time: two threads of two rows each stream as much
    per step as one thread with four."""
    assert [_driver.weight_passes(rows) for rows in (1, 3, 4, 5, 8, 35, 70)] == [1, 3, 1, 2, 2, 11, 19]
    kib = 1 << 10
    assert not _driver.batch_split_pays(4, 1000, 2, 300 * kib)     # 2 + 2 rows: no pass saved
    assert _driver.batch_split_pays(2, 100, 2, 300 * kib)          # 1 + 1 rows: a 300 KiB pass saved per step
    assert not _driver.batch_split_pays(2, 10, 2, 80 * kib)        # ... 80 KiB over 10 steps is too little
    assert _driver.batch_split_pays(64, 50, 2, 72 * kib)           # the small benchmark shape splits


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_a_batch_kept_on_one_thread_gives_the_split_batchs_results(backend, cell, monkeypatch):
    """Same kernel, one chunk instead of two. float32: Numba's one-row and four-row tiles add in the
    same order (identical results); Cython's do not (rtol 1e-4, atol 1e-5: float32 sums in another order)."""
    x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(cell, np.float32, 6, 4, 3, 16, True, True)
    forward, backward = cell_kernels(cell, backend)
    results = []
    for pays in (True, False):  # always split, never split
        monkeypatch.setattr(_driver, "batch_split_pays", lambda *args: pays)
        out = forward(x, lengths, weights, h0, c0)
        grads = backward(weights, out[3], grad_out, grad_h_n, grad_c_n)
        results.append([a for a in list(out[:3]) + list(grads[:3]) + list(grads[3]) if a is not None])
    for split, single in zip(*results):
        if backend == "numba":
            np.testing.assert_array_equal(split, single)
        else:
            np.testing.assert_allclose(split, single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_inference_mode_gives_the_same_outputs_and_keeps_nothing(backend, cell):
    x, lengths, weights, h0, c0, *_ = problem(cell, np.float32, 8, 6, 3, 10, True, False)
    forward, _ = cell_kernels(cell, backend)
    trained = forward(x, lengths, weights, h0, c0)
    inferred = forward(x, lengths, weights, h0, c0, need_grad=False)
    assert inferred[3] is None
    for a, b in zip(trained[:3], inferred[:3]):
        if a is not None:
            # Within float32 rounding, not bit for bit: the Numba kernels' inference passes take each unit
            # through its gates and state in one loop, the training passes store the activated gates first,
            # and LLVM rounds the two a unit in the last place apart (max 1.2e-7 measured); a skipped gate
            # or a wrong state would be off by far more.
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=5e-7)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_finished_rows_output_zero_and_inputs_are_untouched(backend, cell):
    x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(cell, np.float64, 7, 4, 2, 6, True, True)
    copies = [a.copy() for a in (x, h0, grad_out) + weights]
    forward, backward = cell_kernels(cell, backend)
    out, *_, cache = forward(x, lengths, weights, h0, c0)
    grad_x = backward(weights, cache, grad_out, grad_h_n, grad_c_n)[0]
    finished = np.arange(7)[:, None] >= lengths[None, :]
    assert np.all(out[finished] == 0.0) and np.all(grad_x[finished] == 0.0)
    for before, after in zip(copies, (x, h0, grad_out) + weights):
        np.testing.assert_array_equal(before, after)


def test_generated_register_tiles_are_up_to_date():
    """``_tiles.py`` is generated; an edit to the generator must be followed by regenerating it."""
    import os

    from fastrnn.kernels._numba import _generate_tiles
    path = os.path.join(os.path.dirname(_generate_tiles.__file__), "_tiles.py")
    with open(path) as fh:
        assert fh.read() == _generate_tiles.source(), "run python -m fastrnn.kernels._numba._generate_tiles"



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [16, 37, 5])
def test_weights_pack_into_panels_exactly_through_the_block_transpose(dtype, K):
    """pack_unit_group (whole 16 x 16 blocks through the shuffle transpose, the K % 16 left by rows) writes
    ``packed[q * G + g, col0 + k, c] = w[q * H + 16 g + c, k]`` for its group and nothing else; the two
    intrinsics alone on offset blocks, and the row copy on a view. Exact."""
    pytest.importorskip("numba")
    from numba import njit

    from fastrnn.kernels._numba._copy import pack_unit_group
    from fastrnn.kernels._numba._transpose import copy_row_block, transpose_block

    gates, n_groups, col0 = 3, 2, 4
    H = 16 * n_groups
    w = np.random.default_rng(0).standard_normal((gates * H, K)).astype(dtype)
    for group in range(n_groups):
        packed = np.full((gates * n_groups, col0 + K + 3, 16), -7.0, dtype=dtype)
        pack_unit_group(packed, w, col0, group, n_groups)
        want = np.full_like(packed, -7.0)
        for q in range(gates):
            want[q * n_groups + group, col0:col0 + K] = w[q * H + 16 * group:q * H + 16 * (group + 1)].T
        np.testing.assert_array_equal(packed, want)

    @njit(cache=False)
    def one_block(dst, dst_row0, src, src_row0, src_col0):
        transpose_block(dst, dst_row0, src, src_row0, src_col0)

    src = np.arange(20 * 40, dtype=dtype).reshape(20, 40)
    dst = np.zeros((19, 16), dtype=dtype)
    one_block(dst, 2, src, 3, 21)
    np.testing.assert_array_equal(dst[2:18], src[3:19, 21:37].T)
    assert not dst[:2].any() and not dst[18:].any()

    @njit(cache=False)
    def one_row(dst, dst_row, src, src_row, src_col0):
        copy_row_block(dst, dst_row, src, src_row, src_col0)

    view = src[:, 2:]  # the 'A' layout, rows still contiguous
    one_row(dst, 0, view, 5, 17)
    np.testing.assert_array_equal(dst[0], src[5, 19:35])


def test_register_tile_compiles_to_packed_fmas_without_spills():
    """The 4-row tile must become packed FMAs over the columns with its accumulators in registers.

    A compiler flag or CPU that lets LLVM vectorise the k loop instead (``reassoc`` on an AVX-512
    CPU did) spills the accumulators to the stack and runs ~15x slower; this catches it from the
    generated assembly, with no timing.
    """
    import re

    numba = pytest.importorskip("numba")
    import llvmlite.binding as llvm

    from fastrnn.kernels._numba import _compiled_with_slp, _tiles
    from fastrnn.kernels._numba.config import TILE_OPTIONS

    if "+fma" not in llvm.get_host_cpu_features().flatten():
        pytest.skip("this CPU has no FMA instructions")
    fresh = numba.njit(**dict(TILE_OPTIONS, cache=False))(_tiles.add_four_rows_times_panels.py_func)
    packed, vectors = np.ones((2, 8, 16), np.float32), np.ones((4, 8), np.float32)
    acc = np.zeros((4, 32), np.float32)
    _compiled_with_slp(fresh)(acc, 0, vectors, 0, 0, packed, 0, 2)  # as fastrnn.kernels._numba compiles its kernels
    np.testing.assert_array_equal(acc, 8.0)
    asm = next(iter(fresh.inspect_asm().values()))
    packed_fmas = re.findall(r"vfmadd\d+ps\s[^\n]*%[yz]mm", asm)
    scalar_fmas = re.findall(r"vfmadd\d+ss", asm)
    vector_spills = re.findall(r"vmov\w+\s+%[yz]mm\d+, -?\d*\(%rsp\)", asm)
    assert len(packed_fmas) >= 4 and not scalar_fmas, (len(packed_fmas), len(scalar_fmas))
    assert len(vector_spills) <= 16, f"{len(vector_spills)} vector registers spilled to the stack"

def test_group_tile_compiles_to_512_bit_fmas_without_spills():
    """Where fastrnn allowed 512-bit vectors, the group tile must keep its 16 accumulators (8 rows x 2 panels) in zmm
    registers (16 of 32); on 256-bit vectors it would need 32 and is not used (``_tiles.GROUP_TILE``)."""
    import re

    numba = pytest.importorskip("numba")
    from fastrnn.kernels._numba import _compiled_with_slp, _tiles
    from fastrnn.kernels._numba.config import TILE_OPTIONS

    if not _tiles.GROUP_TILE:
        pytest.skip("no 512-bit vectors here: the group tile is not used")
    packed, vectors = np.ones((2, 8, 16), np.float32), np.ones((16, 8), np.float32)

    def run(tile):
        acc = np.zeros((16, 32), np.float32)
        _compiled_with_slp(tile)(acc, vectors, 0, 16, 0, packed)  # as the kernels compile it
        np.testing.assert_array_equal(acc, 8.0)

    # The kernels' own compiled tile (the same signature) where it was compiled in this process, as on a
    # cold cache; code loaded from the disk cache cannot be inspected, so then a fresh compile of it.
    tile = _tiles.add_group_times_panels
    run(tile)
    if tile.stats.cache_hits:
        tile = numba.njit(**dict(TILE_OPTIONS, cache=False))(tile.py_func)
        run(tile)
    asm = next(iter(tile.inspect_asm().values()))
    assert len(re.findall(r"vfmadd\d+ps\s[^\n]*%zmm", asm)) >= 16
    assert not re.findall(r"vfmadd\d+ss", asm)
    vector_spills = re.findall(r"vmov\w+\s+%zmm\d+, -?\d*\(%rsp\)", asm)
    assert len(vector_spills) <= 16, f"{len(vector_spills)} vector registers spilled to the stack"


@pytest.mark.parametrize("panels", [1, 2, 3, 4, 5])
def test_group_tiles_match_numpy_over_panel_pairs_and_an_odd_last_panel(panels):
    """The group tiles go over pairs of panels, then an odd last panel, 8 rows at a time: every
    panel count gives the product (float32 against float64 NumPy, 1e-5 relative to the sums' scale),
    added to what ``acc`` held, for rows given as vectors (offset rows and columns) and as columns.
    Row counts that are not a multiple of 8 finish in 4-row and one-row tiles (13 = 8 + 4 + 1; 3 takes
    no group tile), and float64 rows take those tiles throughout (``added_as_float32_group``)."""
    pytest.importorskip("numba")
    from fastrnn.kernels._numba import _compiled_with_slp, _tiles

    # Compiled as the kernels compile them: the kernels link these very compilations (the same
    # signatures), from memory or the disk cache, so compiling them here without SLP would slow them.
    add_rows_times_panels = _compiled_with_slp(_tiles.add_rows_times_panels)
    add_group_columns_times_panels = _compiled_with_slp(_tiles.add_group_columns_times_panels)
    rng = np.random.default_rng(panels)
    K, row0, col0 = 37, 3, 5
    for dtype in (np.float32, np.float64):
        for rows in (3, 13, 16, _tiles.GROUP):
            packed = rng.standard_normal((panels, K, 16)).astype(dtype)
            vectors = rng.standard_normal((row0 + rows, col0 + K + 2)).astype(dtype)
            start = rng.standard_normal((rows, 16 * panels)).astype(dtype)
            weights = packed.transpose(1, 0, 2).reshape(K, 16 * panels).astype(np.float64)
            want = start + vectors[row0:row0 + rows, col0:col0 + K].astype(np.float64) @ weights
            acc = start.copy()
            add_rows_times_panels(acc, vectors, row0, rows, col0, packed)
            np.testing.assert_allclose(acc, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    packed = packed.astype(np.float32)
    columns = rng.standard_normal((K, 16)).astype(np.float32)
    start = rng.standard_normal((16, 16 * panels)).astype(np.float32)
    acc = start.copy()
    add_group_columns_times_panels(acc, columns, packed)
    want = start + columns.T.astype(np.float64) @ packed.transpose(1, 0, 2).reshape(K, 16 * panels)
    np.testing.assert_allclose(acc, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def _numba_kernels_splitting_columns(parts):
    """The Numba backend's kernel functions, told the thread count is ``parts`` (so a batch of one
    takes the column-split kernels with ``parts`` parts, whatever the machine has)."""
    import copy

    from fastrnn.kernels import _numba

    kernels = copy.copy(_numba._kernels)
    kernels._num_threads = lambda: parts
    assert kernels._column_parts("lstm", 1, 64) == parts
    return kernels


def _column_split_matches_reference(parts, dtype):
    kernels = _numba_kernels_splitting_columns(parts)
    # H = 80, 96, 112: 5, 6, 7 groups of 16 units, so the LSTM backward blocks of up to 4 groups come in every size
    for cell, hidden in [(cell, 80) for cell in CELLS] + [("lstm", 96), ("lstm", 112)]:
        x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(cell, dtype, 7, 1, 3, hidden, False, True)
        for length in (7, 4):  # the whole sequence; one that ends early (its state is carried on)
            lengths[:] = length
            fast = getattr(kernels, f"{cell}_forward")(x, lengths, weights, h0, c0)
            ref = cell_kernels(cell, "reference")[0](x, lengths, weights, h0, c0)
            for got, want in zip(fast[:3], ref[:3]):
                if want is not None:
                    assert relative_error(got, want) <= RTOL[dtype], (cell, length)
            backward = getattr(kernels, "rnn_backward" if cell.startswith("rnn") else f"{cell}_backward")
            grads = backward(weights, fast[3], grad_out, grad_h_n, grad_c_n)
            ref_grads = cell_kernels(cell, "reference")[1](weights, ref[3], grad_out, grad_h_n, grad_c_n)
            for got, want in zip(list(grads[:3]) + list(grads[3]), list(ref_grads[:3]) + list(ref_grads[3])):
                if want is not None:
                    assert relative_error(got, want) <= RTOL[dtype], (cell, length)


@pytest.mark.skipif("numba" not in FAST_BACKENDS, reason="the column-split kernels are Numba's")
@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_column_split_kernels_match_reference_for_any_number_of_parts(parts, dtype):
    """Batch of one, hidden units split over 2 parts, or over 3 (more parts than this machine's threads:
    a part starts only when another has finished, and must find its work done)."""
    _column_split_matches_reference(parts, dtype)


@pytest.mark.skipif("numba" not in FAST_BACKENDS, reason="the column-split kernels are Numba's")
def test_column_split_kernels_finish_when_their_parts_run_one_after_another():
    """With one thread the parallel loop runs its parts in turn: the first must do every step's work
    itself rather than wait for a partner that has not started (a plain barrier would hang here)."""
    import os
    import subprocess
    import sys

    code = ("import numba, numpy as np, sys; sys.path.insert(0, {tests!r}); import test_kernels as t; "
            "numba.set_num_threads(1); t._column_split_matches_reference(2, np.float64); print('ok')")
    done = subprocess.run([sys.executable, "-c", code.format(tests=os.path.dirname(__file__))],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


@pytest.mark.skipif("numba" not in FAST_BACKENDS, reason="the batch blocks are the Numba kernels'")
@pytest.mark.parametrize("batch, parts", [(64, 2), (70, 2), (63, 2), (5, 2), (3, 4), (1, 1), (1000, 3)])
def test_batch_blocks_hand_out_every_row_once(batch, parts):
    """However many parts claim them, in whatever order, the blocks cover each row exactly once; they are
    16 rows (a tile group) only when every part gets two or more, else one even share per part."""
    from fastrnn.kernels._numba._sync import claim_block, new_block_counter, rows_per_block

    rows = rows_per_block(batch, parts, 16)
    counter = new_block_counter()
    claimed = []
    while True:
        first, last = claim_block(counter, rows, batch)
        if first == last:
            break
        claimed.extend(range(first, last))
    assert claimed == list(range(batch))
    assert claim_block(counter, rows, batch) == (batch, batch)  # and nothing more afterwards
    assert (rows == 16) == (batch >= 2 * parts * 16)
    assert -(-batch // rows) >= min(parts, batch) or rows == 16


class _NaNEmptyNumPy:
    """NumPy, except that ``empty`` returns NaN-filled float arrays: a driver buffer left unzeroed
    that the kernels do not write in full then shows up as NaN instead of as harmless stale zeros."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float, **kwargs):
        array = np.empty(shape, dtype, **kwargs)
        if array.dtype.kind == "f":
            array.fill(np.nan)
        return array


def _fill_driver_buffers_with_nan(monkeypatch):
    """Make the driver's fresh buffers NaN-filled: ``np.empty`` (:class:`_NaNEmptyNumPy`) and the
    cache-line-aligned ``empty_aligned`` it packs weights into."""
    from fastrnn.kernels._aligned import empty_aligned

    def nan_filled_aligned(shape, dtype):
        array = empty_aligned(shape, dtype)
        array.fill(np.nan)
        return array

    monkeypatch.setattr(_driver, "np", _NaNEmptyNumPy())
    monkeypatch.setattr(_driver, "empty_aligned", nan_filled_aligned)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch, hidden", [(5, 33), (1, 64)])  # batch chunks; hidden units split over threads
def test_unzeroed_driver_buffers_are_written_in_full(monkeypatch, backend, cell, batch, hidden):
    from fastrnn.kernels import _driver

    _fill_driver_buffers_with_nan(monkeypatch)
    monkeypatch.setattr(_driver, "batch_split_pays", lambda *args: True)  # chunks even for this small batch
    x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(
        cell, np.float64, 6, batch, 3, hidden, False, True)  # every sequence runs all steps
    fast_forward, fast_backward = cell_kernels(cell, backend)
    ref_forward, ref_backward = cell_kernels(cell, "reference")
    fast, ref = fast_forward(x, lengths, weights, h0, c0), ref_forward(x, lengths, weights, h0, c0)
    fast_grads = fast_backward(weights, fast[3], grad_out, grad_h_n, grad_c_n)
    ref_grads = ref_backward(weights, ref[3], grad_out, grad_h_n, grad_c_n)
    flat = lambda result, grads: list(result[:3]) + list(grads[:3]) + list(grads[3])
    for got, want in zip(flat(fast, fast_grads), flat(ref, ref_grads)):
        if want is not None:
            assert relative_error(got, want) <= RTOL[np.float64]


@pytest.mark.parametrize("packer, threads", [("cython", 1), ("cython", 2), ("cython", 3), ("numpy", 1), ("numba", 1),
                                             ("numba", 3)],
                         ids=["cython", "cython-2-threads", "cython-3-threads", "numpy", "numba", "numba-3-threads"])
@pytest.mark.parametrize("rows", [32, 45])  # whole panels; a padded last panel
def test_packed_panels_hold_the_transposed_blocks_and_zero_padding(monkeypatch, packer, threads, rows):
    """Exact, for each packing loop: blocks of 37 columns (two whole 16 x 16 blocks and 5 more) and 5,
    C-contiguous, and a transposed view of 20 (the Numba loop takes the contiguous ones, Cython the
    view, or NumPy where Cython is missing)."""
    from fastrnn.kernels import _driver

    if packer == "cython" and _driver._compiled_packing() is None:
        pytest.skip("the Cython packing extension is not built")
    contiguous_packer = None
    if packer == "numba":
        pytest.importorskip("numba")
        from fastrnn.kernels._numba._copy import pack_block as contiguous_packer
    _fill_driver_buffers_with_nan(monkeypatch)
    monkeypatch.setattr(_driver, "MIN_BYTES_TO_SPLIT", 0)  # split these small blocks when threads > 1
    if packer == "numpy":
        monkeypatch.setattr(_driver, "_packing", [None])
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((rows, 37)).astype(np.float32), rng.standard_normal((rows, 5)).astype(np.float32),
              rng.standard_normal((20, rows)).astype(np.float32).T]
    packed = _driver.pack_panels(*blocks, threads=threads, contiguous_packer=contiguous_packer)
    expected = np.zeros((-(-rows // 16) * 16, 62), dtype=np.float32)
    expected[:rows] = np.concatenate(blocks, axis=1)
    np.testing.assert_array_equal(packed, expected.reshape(-1, 16, 62).transpose(0, 2, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_panels_start_on_a_cache_line(dtype):
    """The packed weights the tiles load, 64-byte rows of 16 float32, start on a cache line: the driver's
    ``pack_panels`` and the Numba kernels' own buffers (``_numba._aligned``; its docstring has what a
    misaligned start cost). Shapes whose size in bytes is no multiple of 64 come before each, so that a
    plain ``np.empty`` would not land on a boundary by chance every time."""
    from fastrnn.kernels._aligned import empty_aligned

    spacers = []
    for rows in range(1, 9):
        spacers.append(np.empty(rows * 3, dtype))
        w = np.ones((rows * 16 + 5, 7), dtype)
        packed = _driver.pack_panels(w, w[:, :3])
        assert packed.ctypes.data % 64 == 0 and packed.flags.c_contiguous and packed.shape == (rows + 1, 10, 16)
        for shape in [(rows, 3, 16), (0, 5, 16), (rows, 2, 3, 16)]:
            array = empty_aligned(shape, dtype)
            assert array.flags.c_contiguous and array.shape == shape and array.dtype == dtype
            assert array.size == 0 or array.ctypes.data % 64 == 0  # no load ever reads an empty one
    if "numba" in available_backends():
        from fastrnn.kernels._numba._aligned import empty_aligned as empty_aligned_in_numba

        like = np.empty(0, dtype)
        for shape in [(3, 5, 16), (0, 5, 16), (4, 2, 3, 16)] + [(rows, 7, 16) for rows in range(1, 9)]:
            array = empty_aligned_in_numba(shape, like)
            assert array.flags.c_contiguous and array.shape == shape and array.dtype == dtype
            assert array.size == 0 or array.ctypes.data % 64 == 0


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("rows", [32, 45])  # whole panels; a padded last panel
@pytest.mark.parametrize("layouts", [("rows", "columns"), ("columns",), ("rows",), ("strided", "rows")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_panels_packed_on_the_openmp_threads_equal_the_blocks(monkeypatch, threads, rows, layouts, dtype):
    """Exact: ``pack_panels`` through the Numba backend's parallel packer (``_copy.pack_panels_in_parts``)
    for one or two blocks of rows (C-contiguous, 37 columns: two whole 16 x 16 blocks and 5 more),
    of columns (a transposed view, 20) or neither (every other column of a wider array, 7)."""
    pytest.importorskip("numba")
    from fastrnn.kernels import _driver
    from fastrnn.kernels._numba._copy import pack_panels_in_parts

    _fill_driver_buffers_with_nan(monkeypatch)  # every element of the result must be written
    monkeypatch.setattr(_driver, "MIN_BYTES_TO_SPLIT", 0)
    rng = np.random.default_rng(0)
    make = {"rows": lambda: rng.standard_normal((rows, 37)).astype(dtype),
            "columns": lambda: rng.standard_normal((20, rows)).astype(dtype).T,
            "strided": lambda: rng.standard_normal((rows, 14)).astype(dtype)[:, ::2]}
    blocks = [make[layout]() for layout in layouts]
    calls = []
    packed = _driver.pack_panels(*blocks, threads=threads,
                                 parallel_packer=lambda *args: calls.append(1) or pack_panels_in_parts(*args))
    assert calls == [1]
    K = sum(block.shape[1] for block in blocks)
    expected = np.zeros((-(-rows // 16) * 16, K), dtype=dtype)
    expected[:rows] = np.concatenate(blocks, axis=1)
    np.testing.assert_array_equal(packed, expected.reshape(-1, 16, K).transpose(0, 2, 1))


def test_read_only_weights_pack_on_the_openmp_threads(monkeypatch):
    """Read-only weights (a memory-mapped model's) pack exactly through the Numba backend's parallel packer,
    whose signatures type the blocks read-only (a writable type rejected them with a TypeError)."""
    pytest.importorskip("numba")
    from fastrnn.kernels import _driver
    from fastrnn.kernels._numba._copy import pack_panels_in_parts

    monkeypatch.setattr(_driver, "MIN_BYTES_TO_SPLIT", 0)
    rng = np.random.default_rng(1)
    w_ih, w_hh = rng.standard_normal((48, 37)).astype(np.float32), rng.standard_normal((48, 20)).astype(np.float32)
    stored = rng.standard_normal((20, 48)).astype(np.float32)  # seen as its transpose, as the backward packs W_hh
    for w in (w_ih, w_hh, stored):
        w.flags.writeable = False
    for blocks in ((w_ih, w_hh), (stored.T,)):
        calls = []
        packed = _driver.pack_panels(*blocks, threads=2,
                                     parallel_packer=lambda *args: calls.append(1) or pack_panels_in_parts(*args))
        assert calls == [1]
        expected = np.concatenate(blocks, axis=1)
        np.testing.assert_array_equal(packed, expected.reshape(-1, 16, expected.shape[1]).transpose(0, 2, 1))
