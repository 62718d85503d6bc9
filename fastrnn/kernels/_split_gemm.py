"""The gradient GEMMs after a backward loop, split over Python threads with single-threaded BLAS.

Why not NumPy's threaded BLAS: OpenBLAS worker threads keep spinning for a while after each GEMM,
and the next forward pass's OpenMP threads then fight them for the cores (a training step at the
``large`` shape lost about 60 ms of 220 to it). Each part here is a row block of the outputs, run
by one thread with BLAS limited to one thread, so no BLAS pool wakes up at all. NumPy releases the
GIL inside the GEMMs.
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# Below this, handing a part to a helper costs about what it saves. Measured on 2 cores with the helpers
# kept waiting, per B=1 H=128 training step: the LSTM's 14.7 MFLOP split 0.87-0.91 ms vs 0.91-0.94 on one
# thread, the GRU's 11 MFLOP 0.85-0.89 vs 0.83-0.85. (With a new thread per call, 14.7 MFLOP took 275 us
# split vs 178 on one thread.)
MIN_FLOPS_TO_SPLIT = 25e6

_blas = None


def blas_limited(threads):
    """A context that limits BLAS to ``threads`` threads (nothing if threadpoolctl is missing).

    The BLAS libraries are looked up once, at the first call, and reused: threadpoolctl's lookup takes
    about 2 ms, longer than a B=1 forward pass. NumPy's BLAS, which runs fastrnn's GEMMs, is loaded
    with NumPy, so it is always among them.
    """
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
        except ImportError:
            _blas = False
    return _blas.limit(limits=threads) if _blas else contextlib.nullcontext()


def row_bounds(rows, parts):
    """``parts`` contiguous ``(start, stop)`` blocks covering ``range(rows)``."""
    return [(k * rows // parts, (k + 1) * rows // parts) for k in range(parts)]


def parts_for(flops, threads):
    """How many parts a product of ``flops`` should be split into on ``threads`` threads."""
    return threads if flops >= MIN_FLOPS_TO_SPLIT else 1


_helpers = None  # (ThreadPoolExecutor, worker count): started on the first split, kept for the next ones
_helpers_lock = threading.Lock()


def _helper_pool(count):
    """An executor with at least ``count`` idle-waiting threads, kept between calls: starting and joining a
    new thread for every backward pass cost 90-140 us here, handing a part to a waiting one 40-50 us."""
    global _helpers
    with _helpers_lock:
        if _helpers is None or _helpers[1] < count:
            previous = _helpers
            _helpers = (ThreadPoolExecutor(count, thread_name_prefix="fastrnn-gemm"), count)
            if previous is not None:
                previous[0].shutdown(wait=False)
        return _helpers[0]


def _forget_helpers_in_child():
    global _helpers
    _helpers = None  # a forked child has none of the parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers_in_child)


def run_parts(work, parts):
    """Call ``work(k)`` for ``k < parts``: part 0 on the caller's thread, the others on helper threads that
    wait between calls, with BLAS on one thread throughout (its pool is not woken even when there is a
    single part). Every part has finished when this returns; the first exception raised is re-raised."""
    errors = []
    with blas_limited(1):
        helpers = [_helper_pool(parts - 1).submit(work, k) for k in range(1, parts)] if parts > 1 else []
        try:
            work(0)
        except BaseException as exc:  # re-raised below, once every helper has finished
            errors.append(exc)
        for helper in helpers:
            try:
                helper.result()
            except BaseException as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
