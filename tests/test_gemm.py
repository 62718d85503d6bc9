"""fastrnn's own float32 GEMM (fastrnn.kernels._numba.gemm), which replaces NumPy's BLAS where that BLAS
runs narrower vectors than Numba's code (fastrnn.kernels._gemm).

Oracle: the float64 product of the same float32 operands. Tolerance: 2e-6 of the largest output, float32
sums of up to ~1000 terms in another order than NumPy's.
"""
import numpy as np
import pytest

pytest.importorskip("numba")

from fastrnn.kernels import _driver, _gemm  # noqa: E402

TOL = 2e-6


def relative_error(got, want):
    return np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)


def operands(M, K, N, a_transposed, b_transposed, seed=0):
    """float32 a (M, K) and b (K, N); a transposed view (memory (K, M)) where asked, likewise b."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M)).astype(np.float32).T if a_transposed else \
        rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32).T if b_transposed else \
        rng.standard_normal((K, N)).astype(np.float32)
    return a, b


@pytest.mark.parametrize("M, K, N", [
    (1, 1, 1),        # one element
    (16, 7, 16),      # one full group, one full panel
    (17, 33, 40),     # a row past the group, a partial panel
    (45, 130, 300),   # several groups and panels, partial both
    (37, 600, 440),   # packed panels over 1 MiB: k in blocks (256, 256, 88)
])
@pytest.mark.parametrize("a_transposed", [False, True], ids=["a-rows", "a-transposed"])
@pytest.mark.parametrize("b_transposed", [False, True], ids=["b-rows", "b-transposed"])
def test_numba_gemm_matches_the_float64_product(M, K, N, a_transposed, b_transposed):
    a, b = operands(M, K, N, a_transposed, b_transposed)
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = _gemm._numba_matmul(a, b, None)
    assert got.shape == (M, N) and got.dtype == np.float32
    assert relative_error(got, want) <= TOL


def test_numba_gemm_writes_into_a_strided_out_and_leaves_the_rest():
    a, b = operands(20, 50, 30, False, False)
    out = np.full((20, 40), 7.0, dtype=np.float32)
    result = _gemm._numba_matmul(a, b, out[:, 5:35])
    assert np.shares_memory(result, out)
    assert relative_error(out[:, 5:35], a.astype(np.float64) @ b) <= TOL
    assert (out[:, :5] == 7).all() and (out[:, 35:] == 7).all()


def test_the_k_blocks_keep_the_packed_panels_in_cache():
    from fastrnn.kernels._numba.gemm import k_block_for

    assert k_block_for(512, 128) == 512      # short K: one block, sums in registers throughout
    assert k_block_for(1024, 16) == 1024     # 1 MiB of panels: one block
    # otherwise blocks of at most half of L2: 16 steps of a panel take 1 KiB
    assert k_block_for(6400, 21) == 256      # the medium shape's first layer's weight gradients: 336 KiB
    assert k_block_for(6400, 33) == 128      # its second layer's: 264 KiB (256 steps would take 528)
    assert k_block_for(1600, 65) == 64       # the large shape's: 260 KiB
    assert k_block_for(51200, 10) == 512     # infer_batch's: 320 KiB, the longest block
    assert k_block_for(10 ** 6, 10 ** 4) == 64  # the shortest block, however many panels


def test_blas_is_replaced_only_where_it_runs_narrower_vectors(monkeypatch):
    import threadpoolctl
    from fastrnn.kernels._numba import _vector_width

    def blas(architecture, api="openblas"):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [
            {"user_api": "blas", "internal_api": api, "architecture": architecture}])

    monkeypatch.setattr(_vector_width, "FULL_WIDTH_VECTORS", True)
    blas("Haswell")                          # OpenBLAS's AVX2 kernels on an AVX-512 CPU (read on a Zen 5)
    assert _gemm.blas_is_narrower()
    blas("SkylakeX")
    assert not _gemm.blas_is_narrower()
    blas(None, api="mkl")                    # no architecture reported: trust the BLAS
    assert not _gemm.blas_is_narrower()
    monkeypatch.setattr(_vector_width, "FULL_WIDTH_VECTORS", False)
    blas("Haswell")                          # Numba's code is no wider either
    assert not _gemm.blas_is_narrower()


def test_small_float64_and_thin_products_stay_on_the_blas(monkeypatch):
    monkeypatch.setattr(_gemm, "_choice", [True])
    calls = []
    monkeypatch.setattr(_gemm, "_numba_matmul", lambda a, b, out: calls.append(a.shape) or np.matmul(a, b))
    big = operands(512, 512, 512, False, False)
    _gemm.matmul(*big)
    assert calls == [(512, 512)]
    _gemm.matmul(big[0].astype(np.float64), big[1].astype(np.float64))   # float64: exact BLAS results
    _gemm.matmul(*operands(512, 512, 17, False, False))                    # 17 columns: two panels, mostly padding
    _gemm.matmul(*operands(64, 64, 64, False, False))                      # 0.5 MFLOP: packing would dominate
    assert calls == [(512, 512)]


@pytest.mark.parametrize("cell, gates", [("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("steps, batch, inputs, hidden", [(7, 19, 130, 16), (5, 40, 20, 33)])
def test_gradients_on_the_numba_gemm_match_the_reference(cell, gates, steps, batch, inputs, hidden, monkeypatch):
    """Every product of the driver on the Numba GEMM (forced, however small): the projection, the weight
    and input gradients (those in ``_numba.gradients``' parallel parts). Same float32 tolerance as
    tests/test_kernels.py."""
    from fastrnn.kernels import cell_kernels

    monkeypatch.setattr(_gemm, "_choice", [True])
    monkeypatch.setattr(_gemm, "MIN_FLOPS", 0)
    monkeypatch.setattr(_gemm, "MIN_ROWS", 1)
    monkeypatch.setattr(_gemm, "MIN_COLUMNS", 1)
    monkeypatch.setattr(_driver, "MIN_WEIGHT_BYTES_TO_PROJECT", 0)
    used = []
    real = _gemm._numba_matmul
    monkeypatch.setattr(_gemm, "_numba_matmul", lambda a, b, out: used.append("projection") or real(a, b, out))
    real_gradients = _gemm.numba_gradients()
    monkeypatch.setattr(_driver, "numba_gradients", lambda: used.append("gradients") or real_gradients)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
    lengths = np.full(batch, steps, dtype=np.int64)
    weights = tuple((0.3 * rng.standard_normal(shape)).astype(np.float32) for shape in
                    ((gates * hidden, inputs), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)))
    h0 = c0 = np.zeros((batch, hidden), dtype=np.float32)
    grad_out = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
    fast_forward, fast_backward = cell_kernels(cell, "numba")
    ref_forward, ref_backward = cell_kernels(cell, "reference")
    fast = fast_forward(x, lengths, weights, h0, c0)
    ref = ref_forward(x, lengths, weights, h0, c0)
    assert relative_error(fast[0], ref[0]) <= 1e-4
    got = fast_backward(weights, fast[3], grad_out, None, None)
    want = ref_backward(weights, ref[3], grad_out, None, None)
    for g, w in zip([got[0]] + list(got[3]), [want[0]] + list(want[3])):
        assert relative_error(g, w) <= 1e-4
    assert "gradients" in used  # the products did run on the Numba GEMM


def _operands(x, out, h0, first, stop):
    """``[x_t | 1 | h_{t-1}]`` of steps ``first .. stop - 1``, one row per (step, batch row), in NumPy."""
    B = x.shape[0]
    states = np.concatenate([h0[:, None], out[:, :-1]], axis=1)  # h_{t-1}, batch-first
    rows = np.concatenate([x, np.ones(x.shape[:2] + (1,), np.float32), states], axis=2)[:, first:stop]
    return np.ascontiguousarray(rows.transpose(1, 0, 2)).reshape((stop - first) * B, -1)


@pytest.mark.parametrize("first_column", [0, 11])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_gradient_operands_are_packed_as_pack_columns_packs_them(first_column, parts):
    """``pack_gradient_operands`` builds the GEMM's packed panels straight from the batch-first arrays,
    exactly as ``pack_columns`` packs the operands built in NumPy: any steps, a column offset (the GRU n
    gate's recurrent side), zeros past the last column and the last row, blocks packed by 1-3 threads."""
    from fastrnn.kernels._numba import gradients
    from fastrnn.kernels._numba.gemm import pack_columns

    B, T, I, H, kb = 5, 7, 11, 20, 8
    rng = np.random.default_rng(4)
    x, out = rng.standard_normal((B, T, I)).astype(np.float32), rng.standard_normal((B, T, H)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    for first, stop in ((0, T), (2, 5)):
        operands = _operands(x, out, h0, first, stop)[:, first_column:]
        rows, P = operands.shape[0], -(-operands.shape[1] // 16)
        want = np.empty((-(-rows // kb), P, kb, 16), np.float32)
        pack_columns(operands, want)
        got = np.full_like(want, np.nan)
        gradients.pack_gradient_operands(x, out, h0, first, stop, first_column, 0, want.shape[0] * kb, got)
        np.testing.assert_array_equal(got, want)
    got = np.full_like(want, np.nan)
    if first_column == 0:  # all steps, a block of step blocks per thread
        want = np.empty((-(-T * B // kb), -(-(I + 1 + H) // 16), kb, 16), np.float32)
        pack_columns(_operands(x, out, h0, 0, T), want)
        got = np.full_like(want, np.nan)
        gradients.pack_gradient_operands_in_parts(x, out, h0, got, parts)
        np.testing.assert_array_equal(got, want)


def test_multiply_packed_reads_a_range_of_panels():
    """``multiply_packed`` multiplies by the columns of one packed operand that start at a panel (the GRU n
    gate's two sides share one packing), and refuses a range past the packed panels or steps."""
    from fastrnn.kernels._numba.gemm import multiply_packed, pack_columns

    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((21, 70)).astype(np.float32), rng.standard_normal((70, 50)).astype(np.float32)
    packed = np.empty((3, 4, 24, 16), np.float32)  # 70 steps in 3 blocks of 24, 50 columns in 4 panels
    pack_columns(b, packed)
    for first_panel, columns in ((0, 50), (1, 34), (2, 17), (0, 9)):
        out = np.empty((21, columns), np.float32)
        multiply_packed(a, packed, first_panel, out)
        want = a.astype(np.float64) @ b[:, 16 * first_panel:16 * first_panel + columns]
        assert relative_error(out, want) <= TOL
    with pytest.raises(ValueError, match="fewer panels or steps"):
        multiply_packed(a, packed, 3, np.empty((21, 17), np.float32))
    with pytest.raises(ValueError, match="fewer panels or steps"):
        multiply_packed(rng.standard_normal((21, 73)).astype(np.float32), packed, 0, np.empty((21, 16), np.float32))


def test_gate_row_blocks_give_each_part_a_share_of_either_kind_of_row():
    """The parts that split the gate rows each get an equal share of the shared rows and of GRU's n-gate
    rows (whose products cost more), covering every row once."""
    blocks = _driver.gate_row_blocks(1536, 1024, 2)
    assert blocks == [(0, 512, 1024, 1280), (512, 1024, 1280, 1536)]
    for G, split, parts in ((768, 512, 3), (256, 256, 2), (48, 32, 5)):
        blocks = _driver.gate_row_blocks(G, split, parts)
        rows = [r for a, b, n0, n1 in blocks for r in list(range(a, b)) + list(range(n0, n1))]
        assert sorted(rows) == list(range(G))
        assert all(b <= split <= n0 for a, b, n0, n1 in blocks)


@pytest.mark.parametrize("tail", [False, True], ids=["lstm-like", "gru-n-gate-tail"])
@pytest.mark.parametrize("split_steps", [True, False], ids=["parts-split-steps", "parts-split-gate-rows"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("need_grad_x", [True, False])
@pytest.mark.parametrize("I", [11, 32])
def test_gradient_parts_on_openmp_match_the_python_threads(tail, split_steps, threads, need_grad_x, I, monkeypatch):
    """The weight and input gradients computed by ``_numba.gradients`` (parts on the OpenMP threads) equal
    those of the Python-thread parts on the BLAS, for either split, a GRU-like tail and 1-3 parts; inputs
    that fill whole panels (the n gate's sides then read panels of one packing) or not."""
    from fastrnn.kernels import _split_gemm

    T, B, H = 7, 5, 16
    G = (3 if tail else 4) * H
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, I)).astype(np.float32).transpose(1, 0, 2)     # time-major views, as passed
    out = rng.standard_normal((B, T, H)).astype(np.float32).transpose(1, 0, 2)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    w_ih = rng.standard_normal((G, I)).astype(np.float32)
    d_pre = rng.standard_normal((T, B, G + 5)).astype(np.float32)[:, :, :G]       # padded rows, as the kernels' are
    d_tail = rng.standard_normal((T, B, H)).astype(np.float32) if tail else None
    monkeypatch.setattr(_split_gemm, "MIN_FLOPS_TO_SPLIT", 0)
    monkeypatch.setattr(_driver, "MIN_ROWS_PER_GATE_COLUMN_TO_SPLIT_STEPS", 0 if split_steps else 10 ** 9)
    results = {}
    for numba_gemm in (True, False):
        monkeypatch.setattr(_gemm, "_choice", [numba_gemm])
        assert (_gemm.numba_gradients() is not None) == numba_gemm
        results[numba_gemm] = _driver.weight_and_input_gradients(x, out, h0, w_ih, d_pre, threads, d_tail,
                                                                 need_grad_x)
    (got_x, got), (want_x, want) = results[True], results[False]
    assert (got_x is None) == (want_x is None) == (not need_grad_x)
    for g, w in zip(([got_x] if need_grad_x else []) + list(got), ([want_x] if need_grad_x else []) + list(want)):
        assert g.shape == w.shape and relative_error(g, w) <= TOL


@pytest.mark.parametrize("I", [13, 32])
def test_gradient_parts_over_several_step_blocks_match_the_python_threads(I, monkeypatch):
    """Operands too large for one block of steps (600 rows x 29 panels: blocks of 256 steps, the last
    partial), packed once by both threads, for a GRU's split gate rows: as the Python-thread parts."""
    T, B, H = 10, 60, 448 - I
    rng = np.random.default_rng(6)
    x = rng.standard_normal((B, T, I)).astype(np.float32).transpose(1, 0, 2)
    out = rng.standard_normal((B, T, H)).astype(np.float32).transpose(1, 0, 2)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    w_ih = rng.standard_normal((3 * H, I)).astype(np.float32)
    d_pre = rng.standard_normal((T, B, 3 * H)).astype(np.float32)
    d_tail = rng.standard_normal((T, B, H)).astype(np.float32)
    monkeypatch.setattr(_driver, "MIN_ROWS_PER_GATE_COLUMN_TO_SPLIT_STEPS", 10 ** 9)
    results = {}
    for numba_gemm in (True, False):
        monkeypatch.setattr(_gemm, "_choice", [numba_gemm])
        results[numba_gemm] = _driver.weight_and_input_gradients(x, out, h0, w_ih, d_pre, 2, d_tail, False)[1]
    for g, w in zip(results[True], results[False]):
        assert g.shape == w.shape and relative_error(g, w) <= TOL


def _gradients_in_child(arguments):
    weights, x, grad_out = arguments
    from fastrnn.kernels import cell_kernels

    forward, backward = cell_kernels("lstm", "numba")  # the Cython kernels on one thread where OpenMP started
    h0 = np.zeros((x.shape[1], weights[1].shape[1]), dtype=np.float32)
    cache = forward(x, np.full(x.shape[1], x.shape[0]), weights, h0, h0)[3]
    return backward(weights, cache, grad_out, None, None)[3]


def test_gradients_in_a_child_forked_after_openmp_started(monkeypatch):
    """A training step in a child forked after the parent's OpenMP threads ran the gradient parts
    (``_numba.gradients``, which cannot run there) takes the Python-thread parts: it finishes, with the
    parent's gradients to float32 rounding."""
    import multiprocessing

    import fastrnn.kernels as kernels

    monkeypatch.setattr(_gemm, "_choice", [True])
    rng = np.random.default_rng(3)
    T, B, I, H = 6, 4, 5, 16
    weights = tuple((0.3 * rng.standard_normal(shape)).astype(np.float32)
                    for shape in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,)))
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    grad_out = rng.standard_normal((T, B, H)).astype(np.float32)
    in_parent = _gradients_in_child((weights, x, grad_out))  # OpenMP threads start here (2 parts)
    if not kernels._loaded["numba"].openmp_threads_started():
        pytest.skip("Numba's threading layer here is not OpenMP: a fork is safe anyway")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        in_child = pool.map_async(_gradients_in_child, [(weights, x, grad_out)]).get(timeout=120)[0]
    for got, want in zip(in_child, in_parent):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gradients_with_read_only_weights_on_the_numba_gemm(monkeypatch):
    """A backward pass whose weights are read-only (a memory-mapped model's, asked for input gradients):
    the Numba gradient kernel and GEMM take read-only operands (a writable type rejected them with a
    TypeError), with the results of writable weights."""
    from fastrnn.kernels import cell_kernels

    monkeypatch.setattr(_gemm, "_choice", [True])
    rng = np.random.default_rng(5)
    T, B, I, H = 6, 4, 5, 16
    weights = tuple((0.3 * rng.standard_normal(shape)).astype(np.float32)
                    for shape in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,)))
    frozen = tuple(w.copy() for w in weights)
    for w in frozen:
        w.flags.writeable = False
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    grad_out = rng.standard_normal((T, B, H)).astype(np.float32)
    forward, backward = cell_kernels("lstm", "numba")
    h0 = np.zeros((B, H), dtype=np.float32)
    results = []
    for w in (weights, frozen):
        cache = forward(x, np.full(B, T), w, h0, h0)[3]
        grad_x, _, _, grads = backward(w, cache, grad_out, None, None)
        results.append([grad_x, *grads])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
