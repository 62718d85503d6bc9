"""Compilation settings shared by every Numba kernel, in one place."""
# fastmath lets LLVM vectorise the gate loops and fuse multiply-adds; error_model="numpy" removes the
# zero-division branch Numba otherwise puts on every float division (it blocks vectorisation).
JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=True, error_model="numpy")
PARALLEL_OPTIONS = dict(JIT_OPTIONS, parallel=True)
