"""The Numba backend: fused, batch-parallel time loops compiled on first use and cached on disk.

Exposes ``{cell}_forward`` / ``{cell}_backward`` for every cell with the contract of
:mod:`fastrnn.kernels.reference` (plus ``need_grad=False`` on forward to skip saving activations).
"""
import contextlib

import numba  # an ImportError here makes the registry fall back to another backend

from .._driver import FusedKernels
from . import _vector_width  # noqa: F401 (before the kernels: it sets Numba's CPU features before any @njit)
from ._chunks import chunk_count
from ._copy import pack_block, pack_panels_in_parts, padded_row_length
from .gru import gru_backward_recurrence, gru_forward_columns, gru_forward_recurrence
from .lstm import lstm_backward_columns, lstm_backward_recurrence, lstm_forward_columns, lstm_forward_recurrence
from .optim import adam_update, adam_update_split
from .rnn import rnn_backward_recurrence, rnn_forward_columns, rnn_forward_recurrence



def _compiled_with_slp(kernel):
    """Call ``kernel`` with LLVM's SLP vectoriser on while it compiles.

    The register tiles in ``_tiles`` become packed FMAs only with SLP vectorisation (3.6 -> 85
    GFLOP/s per core measured here), which Numba leaves off by default. The setting is read each time
    Numba optimises a function, so it is switched on around our calls only, not for other code.
    """
    def call(*args):
        if numba.config.SLP_VECTORIZE:
            return kernel(*args)
        numba.config.SLP_VECTORIZE = 1
        try:
            return kernel(*args)
        finally:
            numba.config.SLP_VECTORIZE = 0

    call.__name__ = call.__qualname__ = kernel.__name__
    call.__doc__ = kernel.__doc__
    call.kernel = kernel
    return call


@contextlib.contextmanager
def _one_thread():
    """Numba's thread count, which is per calling thread, set to 1 for the block: a parallel loop then
    runs on the caller alone and wakes no worker (it would, however few its iterations)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


_kernels = FusedKernels(
    lstm_forward=_compiled_with_slp(lstm_forward_recurrence),
    lstm_backward=_compiled_with_slp(lstm_backward_recurrence),
    gru_forward=_compiled_with_slp(gru_forward_recurrence), gru_backward=_compiled_with_slp(gru_backward_recurrence),
    rnn_forward=_compiled_with_slp(rnn_forward_recurrence), rnn_backward=_compiled_with_slp(rnn_backward_recurrence),
    chunk_count=chunk_count, num_threads=lambda: get_num_threads(), one_thread=_one_thread, projects_inputs=True,
    column_forwards={cell: _compiled_with_slp(kernel) for cell, kernel in (
        ("lstm", lstm_forward_columns), ("gru", gru_forward_columns), ("rnn", rnn_forward_columns))},
    column_backwards={"lstm": _compiled_with_slp(lstm_backward_columns)}, gate_row_length=padded_row_length,
    pack_block=pack_block, parallel_pack=pack_panels_in_parts)
globals().update(_kernels.export())


def set_num_threads(n):
    """Threads the Numba kernels split a batch over (at most ``NUMBA_NUM_THREADS``)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1; got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads():
    """Threads the Numba kernels currently use."""
    return numba.get_num_threads()


def openmp_threads_started():
    """Whether Numba's thread pool runs on GNU OpenMP (its ``omp`` layer) and has started.

    A process forked after that cannot run Numba's parallel kernels: Numba terminates it.
    """
    try:
        return numba.threading_layer() == "omp"
    except ValueError:  # no parallel kernel has run yet
        return False


__all__ = sorted(_kernels.export()) + ["adam_update", "adam_update_split", "get_num_threads", "openmp_threads_started",
                                       "set_num_threads"]
