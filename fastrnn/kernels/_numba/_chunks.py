"""How a batch is split across threads: contiguous chunks, one per thread, each running the whole
time loop (no barrier per step)."""
import numba
from numba import njit

from .config import JIT_OPTIONS


def chunk_count(batch):
    """Number of batch chunks for the current thread count (computed in Python: a call to
    ``numba.get_num_threads`` inside a kernel would stop it from being cached)."""
    return max(1, min(batch, numba.get_num_threads()))


@njit(inline="always", **JIT_OPTIONS)
def chunk_bounds(chunk, n_chunks, batch):
    """Rows ``[first, last)`` of chunk ``chunk`` out of ``n_chunks`` over ``batch`` rows."""
    return chunk * batch // n_chunks, (chunk + 1) * batch // n_chunks
