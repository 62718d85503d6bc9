"""Work sharing inside one parallel region, for the kernels that split a step's columns across threads.

When the batch is smaller than the thread count (``B = 1`` above all), the rows cannot keep the
threads busy, so every step's hidden units are split instead, and the threads must meet after each
step (step ``t + 1`` reads all of ``h_t``). Numba has no barrier and no atomics, so this module adds
the two atomic operations as LLVM intrinsics and builds a barrier that cannot deadlock on them:

- Each step's work is a list of items (groups of 16 hidden units). Every part of the parallel loop
  owns a contiguous range of items, claims them one by one with an atomic counter, then claims what
  is left of the other parts' ranges, and adds how many items it finished to the step's ``done``
  counter.
- A part moves on to the next step once ``done`` reaches the number of items. It never waits for work
  nobody has claimed: if the parallel loop's parts run one after another (nested parallelism, one
  thread), the first part does every item and the others find nothing left to do.

Items that a part owns go to it in the normal case, so each thread keeps reusing the same weight
panels from its own cache (the DeepCPU idea); stealing only evens out a late thread.
"""
import platform
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._chunks import chunk_bounds
from .config import JIT_OPTIONS

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# The C library's "let another thread run": resolved by name when the kernel is linked, so cached code keeps working.
_yield_core = types.ExternalFunction("SwitchToThread" if sys.platform == "win32" else "sched_yield", types.intc())
SPINS_BEFORE_YIELD = 4000  # pause-loop turns before a waiting thread starts giving its core away


def _item_pointer(context, builder, array_type, array, index, index_type):
    array = context.make_array(array_type)(context, builder, array)
    index = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


@intrinsic
def atomic_add(typingctx, counters, index, value):
    """``old = counters[index]; counters[index] += value; return old`` as one atomic operation
    (sequentially consistent: writes made before it are visible to whoever reads the new count)."""
    if not (isinstance(counters, types.Array) and counters.dtype == types.int64 and counters.ndim == 1):
        return None
    sig = types.int64(counters, index, value)

    def codegen(context, builder, signature, args):
        pointer = _item_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        amount = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, amount, "seq_cst")

    return sig, codegen


@intrinsic
def atomic_load(typingctx, counters, index):
    """``counters[index]`` read with acquire ordering, never cached in a register across a loop."""
    if not (isinstance(counters, types.Array) and counters.dtype == types.int64 and counters.ndim == 1):
        return None
    sig = types.int64(counters, index)

    def codegen(context, builder, signature, args):
        pointer = _item_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return builder.load_atomic(pointer, "acquire", 8)

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The x86 ``pause`` hint inside a spin loop (nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:  # an LLVM intrinsic: Numba's JIT has no assembler for inline asm
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()

    return sig, codegen


LINE = 8  # int64 counters per 64-byte cache line: each counter gets a line of its own


@njit(**JIT_OPTIONS)
def new_counters(n_steps, n_parts):
    """``(claims, done)``, zeroed: per step and part how many of the part's items have been handed
    out, and per step how many items are finished; each counter on its own cache line, so a part
    claiming its own items does not pull a line away from the other threads."""
    return np.zeros(n_steps * n_parts * LINE, dtype=np.int64), np.zeros(n_steps * LINE, dtype=np.int64)


@njit(**JIT_OPTIONS)
def claim_item(claims, part, n_parts, n_items, step):
    """The next unclaimed item of ``step`` for ``part``: from its own range first, then the others'.
    Returns the item index, or -1 when every item of the step has been claimed."""
    for k in range(n_parts):
        owner = (part + k) % n_parts
        first, last = chunk_bounds(owner, n_parts, n_items)
        counter = (step * n_parts + owner) * LINE
        if atomic_load(claims, counter) >= last - first:
            continue
        item = first + atomic_add(claims, counter, 1)
        if item < last:
            return item
    return -1


@njit(**JIT_OPTIONS)
def finish_step(done, step, n_finished, n_items):
    """Count this part's ``n_finished`` items of ``step`` as done, then wait until all ``n_items`` are.

    Spins with the pause hint; after a while yields the core on every turn (so a thread that was
    descheduled gets it back quickly on a busy machine).
    """
    atomic_add(done, step * LINE, n_finished)
    spins = 0
    while atomic_load(done, step * LINE) < n_items:
        if spins < SPINS_BEFORE_YIELD:
            cpu_relax()
            spins += 1
        else:
            _yield_core()


# ---------------------------------------------------------------- batch blocks
# The batch kernels need no barrier per step: each part runs the whole time loop on its rows. It claims
# them a block at a time, so a part that starts late (an OpenMP worker woken from sleep starts 40-150 us
# after the caller's thread in the virtual machines measured here) leaves blocks to the others instead
# of finishing last.


@njit(**JIT_OPTIONS)
def rows_per_block(batch, n_parts, group):
    """Rows per block: ``group`` (the rows that share one pass over the weights) when every part gets at
    least two such blocks; otherwise an even share, one block per part (smaller blocks would stream
    the weights once more per step for fewer rows)."""
    if batch >= 2 * n_parts * group:
        return group
    return -(-batch // n_parts)


@njit(**JIT_OPTIONS)
def new_block_counter():
    """The shared count of claimed blocks, on a cache line of its own."""
    return np.zeros(LINE, dtype=np.int64)


@njit(**JIT_OPTIONS)
def claim_block(counter, block_rows, batch):
    """Rows ``[first, last)`` of the next unclaimed block; ``first == last`` once every row is claimed."""
    first = min(batch, atomic_add(counter, 0, 1) * block_rows)
    return first, min(batch, first + block_rows)
