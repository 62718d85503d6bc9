"""Work sharing inside one parallel region, for the kernels that split a step's columns across threads.

When the batch is smaller than the thread count (``B = 1`` above all), the rows cannot keep the
threads busy, so every step's hidden units are split instead, and the threads must meet after each
step (step ``t + 1`` reads all of ``h_t``). Numba has no barrier and no atomics, so this module adds
the two atomic operations as LLVM intrinsics and builds a barrier that cannot deadlock on them
(:func:`next_item`):

- Each step's work is a list of items (groups of 16 hidden units). Every part of the parallel loop
  owns a contiguous range of them and takes it whole with one atomic operation on a counter in cache
  lines no other part writes in the normal case; then it works through the range with no further
  atomics, adds how many items it finished to the step's ``done`` counter, and waits until ``done``
  reaches the number of items.
- Only if that wait drags on does a part take over another part's range that nobody has taken yet,
  so a part that runs late (asleep, descheduled, or never started: nested parallelism runs the parts
  one after another on one thread) costs the others a wait, not a deadlock.

Claiming item by item, and looking at the other parts' counters as soon as the own range was done,
moved cache lines between the cores every step: on the B=1 LSTM that cost 6-14% of the time against a
static split (paired runs on a Zen 4). A part that takes over another's range also reads that range's
weights from the other core's cache, so it waits long before it does. Items a part owns go to it, so
each thread keeps reusing the same weight panels from its own cache (the DeepCPU idea).
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


LINE = 8  # int64 counters per 64-byte cache line
# Waiting turns between two looks at the other parts' counters for a range to take over: a pause turn
# took 27 ns on a Zen 4, so about 55 us, far beyond a step's usual imbalance (1-2 us) but short next to
# an OpenMP worker's wake-up (40-150 us).
TURNS_BETWEEN_STEALS = 2048


@njit(**JIT_OPTIONS)
def new_counters(n_steps, n_parts):
    """``(claims, done)``, zeroed. ``claims``: per part and step, whether the part's range of items has
    been taken (by the part or by another), each part's counters in cache lines of their own (one line
    to spare: the array need not start on a line); ``done``: per step how many items are finished, one
    line each."""
    per_part = (-(-n_steps // LINE) + 1) * LINE
    return np.zeros(n_parts * per_part, dtype=np.int64), np.zeros(n_steps * LINE, dtype=np.int64)


@njit(**JIT_OPTIONS)
def new_tally():
    """A part's own bookkeeping for :func:`next_item`: ``[items finished and not yet counted as done,
    whether the last look at the other parts' ranges found one, next item of the range held, its end]``."""
    return np.zeros(4, dtype=np.int64)


@njit(inline="always", **JIT_OPTIONS)
def _take_range(claims, owner, n_parts, step, look_first):
    """Whether this call took ``owner``'s range of ``step`` (the first to add to its counter does).
    ``look_first``: read the counter before adding to it, so a range already taken costs its owner's
    cache line no write (for other parts' ranges)."""
    counter = owner * (claims.shape[0] // n_parts) + step
    if look_first and atomic_load(claims, counter) != 0:
        return False
    return atomic_add(claims, counter, 1) == 0


@njit(inline="always", **JIT_OPTIONS)
def _hold(tally, first, last):
    tally[2], tally[3] = first + 1, last
    return first


@njit(**JIT_OPTIONS)
def next_item(claims, done, tally, part, n_parts, n_items, step):
    """The next item of ``step`` for ``part`` to work on, or -1 once every item of the step is done.

    ``tally`` (from :func:`new_tally`, the part's own): the caller adds 1 to ``tally[0]`` after each item
    it completes. A part takes its own range of items whole, with one atomic operation, and hands them
    out one by one; then it adds what it finished to ``done`` and waits for the step to be done as
    :func:`next_stolen_item` says.
    """
    if tally[2] < tally[3]:
        return _hold(tally, tally[2], tally[3])
    first, last = chunk_bounds(part, n_parts, n_items)
    if first < last and _take_range(claims, part, n_parts, step, False):
        return _hold(tally, first, last)
    return next_stolen_item(claims, done, tally, part, n_parts, n_items, step)


@njit(inline="always", **JIT_OPTIONS)
def take_own_range(claims, part, n_parts, n_items, step):
    """``part``'s own items ``[first, last)`` of ``step``, taken whole with one atomic operation; an empty
    range if another part took them first (or the part owns none). For a kernel that works through
    its own range itself and then calls :func:`next_stolen_item` to finish the step."""
    first, last = chunk_bounds(part, n_parts, n_items)
    if first < last and _take_range(claims, part, n_parts, step, False):
        return first, last
    return first, first


@njit(inline="always", **JIT_OPTIONS)
def report_done(done, tally, step):
    """Add the items counted in ``tally[0]`` to ``step``'s ``done`` counter now (at once visible to the
    parts waiting on it), and zero the count."""
    if tally[0]:
        atomic_add(done, step * LINE, tally[0])
        tally[0] = 0


@njit(**JIT_OPTIONS)
def next_stolen_item(claims, done, tally, part, n_parts, n_items, step):
    """After ``part`` is through its own range of ``step``: the next item of a range it took over from
    another part, or -1 once every item of the step is done.

    It adds what it finished (``tally[0]``) to ``done`` and waits for the step to be done, spinning with
    the pause hint and, after a while, yielding the core on every turn. Every
    :data:`TURNS_BETWEEN_STEALS` turns it takes over the range of another part that has not taken its
    own yet, and while that keeps finding ranges (another part is absent: asleep, descheduled or not
    run yet) it looks without waiting first.
    """
    if tally[2] < tally[3]:
        return _hold(tally, tally[2], tally[3])
    if tally[0]:
        total = atomic_add(done, step * LINE, tally[0]) + tally[0]
        tally[0] = 0
    else:
        total = atomic_load(done, step * LINE)
    turns = 0
    while total < n_items:
        if tally[1] or turns % TURNS_BETWEEN_STEALS == TURNS_BETWEEN_STEALS - 1:
            tally[1] = 0
            for k in range(1, n_parts):
                owner = (part + k) % n_parts
                first, last = chunk_bounds(owner, n_parts, n_items)
                if first < last and _take_range(claims, owner, n_parts, step, True):
                    tally[1] = 1
                    return _hold(tally, first, last)
        if turns < SPINS_BEFORE_YIELD:
            cpu_relax()
        else:
            _yield_core()
        turns += 1
        total = atomic_load(done, step * LINE)
    return -1


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
