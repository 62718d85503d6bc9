"""How many parts a parallel loop has, and the contiguous share of items each part owns.

The column-split kernels' parts own hidden-unit groups this way (``_sync.next_item``); the batch
kernels' parts instead claim blocks of rows as they come free (``_sync.claim_block``)."""
import numba
from numba import njit

from .config import JIT_OPTIONS


def chunk_count(batch):
    """Number of parallel parts for a batch of ``batch`` rows at the current thread count (computed in
    Python: a call to ``numba.get_num_threads`` inside a kernel would stop it from being cached)."""
    return max(1, min(batch, numba.get_num_threads()))


@njit(inline="always", **JIT_OPTIONS)
def chunk_bounds(chunk, n_chunks, batch):
    """Rows ``[first, last)`` of chunk ``chunk`` out of ``n_chunks`` over ``batch`` rows."""
    return chunk * batch // n_chunks, (chunk + 1) * batch // n_chunks


@njit(inline="always", **JIT_OPTIONS)
def chunk_of(row, n_chunks, batch):
    """The chunk whose :func:`chunk_bounds` hold ``row`` (``0 <= row < batch``)."""
    chunk = 0
    while chunk_bounds(chunk, n_chunks, batch)[1] <= row:
        chunk += 1
    return chunk
