"""Work sharing inside one parallel region, for the kernels that split a step's columns across threads.

When the batch is smaller than the thread count (``B = 1`` above all), the rows cannot keep the
threads busy, so every step's hidden units are split instead, and the threads must meet after each
step (step ``t + 1`` reads all of ``h_t``). Numba has no barrier and no atomics, so this module adds
the two atomic operations as LLVM intrinsics and builds a barrier that cannot deadlock on them:

- Each step's work is a list of items (groups of 16 hidden units). Every part of the parallel loop
  owns a contiguous range of items, claims them one by one with an atomic counter, then claims what
  is left of the other parts' ranges, and counts each finished item in the step's ``done`` counter.
- A part moves on to the next step once ``done`` reaches the number of items. It never waits for work
  nobody has claimed: if the parallel loop's parts run one after another (nested parallelism, one
  thread), the first part does every item and the others find nothing left to do.

Items that a part owns go to it in the normal case, so each thread keeps reusing the same weight
panels from its own cache (the DeepCPU idea); stealing only evens out a late thread.
"""
import platform
import sys

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


@njit(**JIT_OPTIONS)
def wait_until_done(done, step, n_items):
    """Spin until ``done[step] == n_items``; after a while yield the core on every turn (so a thread
    that was descheduled gets it back quickly on a busy machine)."""
    spins = 0
    while atomic_load(done, step) < n_items:
        if spins < SPINS_BEFORE_YIELD:
            cpu_relax()
            spins += 1
        else:
            _yield_core()


@njit(**JIT_OPTIONS)
def claim_item(claims, part, n_parts, n_items, step):
    """The next unclaimed item of ``step`` for ``part``: from its own range first, then the others'.

    claims (n_steps * n_parts,) int64: how many items of each part's range have been handed out.
    Returns the item index, or -1 when every item of the step has been claimed.
    """
    for k in range(n_parts):
        owner = (part + k) % n_parts
        first, last = chunk_bounds(owner, n_parts, n_items)
        if atomic_load(claims, step * n_parts + owner) >= last - first:
            continue
        item = first + atomic_add(claims, step * n_parts + owner, 1)
        if item < last:
            return item
    return -1
