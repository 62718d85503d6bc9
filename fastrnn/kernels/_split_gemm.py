"""The gradient GEMMs after a backward loop, split over Python threads with single-threaded BLAS.

Why not NumPy's threaded BLAS: OpenBLAS worker threads keep spinning for a while after each GEMM,
and the next forward pass's OpenMP threads then fight them for the cores (a training step at the
``large`` shape lost about 60 ms of 220 to it). Each part here is a row block of the outputs, run
by one thread with BLAS limited to one thread, so no BLAS pool wakes up at all. NumPy releases the
GIL inside the GEMMs.
"""
import contextlib
import threading

# Below this a helper thread's start costs more than it saves (measured on 2 cores: 14.7 MFLOP,
# the B=1 H=128 LSTM's weight gradients, 178 us on one thread vs 275 us split; 29.5 MFLOP even).
MIN_FLOPS_TO_SPLIT = 25e6

_blas = None


def _single_threaded_blas():
    """A context that limits every loaded BLAS to one thread (nothing if threadpoolctl is missing)."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
        except ImportError:
            _blas = False
    return _blas.limit(limits=1) if _blas else contextlib.nullcontext()


def row_bounds(rows, parts):
    """``parts`` contiguous ``(start, stop)`` blocks covering ``range(rows)``."""
    return [(k * rows // parts, (k + 1) * rows // parts) for k in range(parts)]


def parts_for(flops, threads):
    """How many parts a product of ``flops`` should be split into on ``threads`` threads."""
    return threads if flops >= MIN_FLOPS_TO_SPLIT else 1


def run_parts(work, parts):
    """Call ``work(k)`` for ``k < parts``, each part on its own thread (the caller's is one of them), with
    BLAS on one thread throughout: its pool is not woken even when there is a single part."""
    errors = []

    def guarded(k):
        try:
            work(k)
        except BaseException as exc:  # re-raised in the caller below
            errors.append(exc)

    with _single_threaded_blas():
        helpers = [threading.Thread(target=guarded, args=(k,), daemon=True) for k in range(1, parts)]
        for helper in helpers:
            helper.start()
        guarded(0)
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]
