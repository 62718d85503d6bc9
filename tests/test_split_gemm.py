"""The thread split of the gradient GEMMs (fastrnn.kernels._split_gemm): every part runs exactly once,
a helper's exception reaches the caller only after every part has finished, the helper threads are
kept between calls, several callers can share them at once, and a forked child gets its own."""
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastrnn.kernels._split_gemm import row_bounds, run_parts

TIMEOUT_S = 60


def test_every_part_runs_once_and_part_zero_on_the_callers_thread():
    calls, threads = [], {}

    def work(k):
        calls.append(k)
        threads[k] = threading.get_ident()

    run_parts(work, 3)
    assert sorted(calls) == [0, 1, 2]
    assert threads[0] == threading.get_ident()
    assert threads[1] != threads[0] and threads[2] != threads[0]


def test_a_helpers_exception_is_raised_after_every_part_finished():
    finished = []

    def work(k):
        if k == 1:
            raise ValueError("part 1 failed")
        time.sleep(0.05)
        finished.append(k)

    with pytest.raises(ValueError, match="part 1 failed"):
        run_parts(work, 3)
    assert sorted(finished) == [0, 2]
    run_parts(lambda k: None, 3)  # the helpers survive a failed part


def test_helper_threads_are_kept_between_calls():
    run_parts(lambda k: None, 2)
    existing = {thread.ident for thread in threading.enumerate()}
    seen = []
    for _ in range(5):
        run_parts(lambda k: seen.append(threading.get_ident()) if k else None, 2)
    assert len(seen) == 5 and set(seen) <= existing  # no thread started for the later calls


def test_callers_on_many_threads_share_the_helpers():
    a = np.random.default_rng(0).standard_normal((96, 40)).astype(np.float32)

    def split_product():
        out = np.empty((96, 96), dtype=np.float32)
        bounds = row_bounds(96, 2)

        def part(k):
            first, last = bounds[k]
            np.matmul(a[first:last], a.T, out=out[first:last])

        run_parts(part, 2)
        return out

    expected = a @ a.T
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [f.result(timeout=TIMEOUT_S) for f in [pool.submit(split_product) for _ in range(30)]]
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def _split_in_child(_):
    calls = []
    run_parts(calls.append, 2)
    return sorted(calls)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_a_child_forked_after_the_helpers_started_gets_its_own():
    run_parts(lambda k: None, 2)  # the parent's helper thread now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map_async(_split_in_child, [0]).get(timeout=TIMEOUT_S) == [[0, 1]]


@pytest.mark.parametrize("by_steps", [True, False])
@pytest.mark.parametrize("gru_tail", [False, True])
@pytest.mark.parametrize("need_grad_x", [True, False])
def test_weight_gradients_split_by_steps_or_gate_rows_match_one_product(monkeypatch, by_steps, gru_tail, need_grad_x):
    """Both ways of splitting the weight-gradient GEMMs over 3 parts (T = 7 does not divide evenly) give
    the single-product answer: [x | 1 | h_prev]^T d_pre, GRU's n gate from each side's own gradient.
    float64, rtol 1e-12 (only the summation order differs)."""
    from fastrnn.kernels import _driver

    monkeypatch.setattr(_driver, "parts_for", lambda flops, threads: threads)
    monkeypatch.setattr(_driver, "MIN_ROWS_PER_GATE_COLUMN_TO_SPLIT_STEPS", 0 if by_steps else 10 ** 9)
    rng = np.random.default_rng(0)
    T, B, I, H = 7, 5, 3, 4
    G = (3 if gru_tail else 4) * H
    x, out = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    h0, w_ih, d_pre = rng.standard_normal((B, H)), rng.standard_normal((G, I)), rng.standard_normal((T, B, G))
    tail = rng.standard_normal((T, B, H)) if gru_tail else None
    grad_x, (gw_ih, gw_hh, gb_ih, gb_hh) = _driver.weight_and_input_gradients(
        x, out, h0, w_ih, d_pre, threads=3, d_pre_x_tail=tail, need_grad_x=need_grad_x)

    xs, h_prev = x.reshape(T * B, I), np.concatenate([h0[None], out[:-1]]).reshape(T * B, H)
    d2 = d_pre.reshape(T * B, G)
    d_x = d2.copy()  # the gradient the input side sees
    if gru_tail:
        d_x[:, 2 * H:] = tail.reshape(T * B, H)
    np.testing.assert_allclose(gw_ih, d_x.T @ xs, rtol=1e-12)
    np.testing.assert_allclose(gb_ih, d_x.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(gw_hh, d2.T @ h_prev, rtol=1e-12)
    np.testing.assert_allclose(gb_hh, d2.sum(axis=0), rtol=1e-12)
    if need_grad_x:
        np.testing.assert_allclose(grad_x.reshape(T * B, I), d_x @ w_ih, rtol=1e-12)
    else:
        assert grad_x is None
