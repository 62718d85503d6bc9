# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Ahead-of-time compiled time loops: the Cython twins of :mod:`fastrnn.kernels._numba`'s recurrences,
compiled for any CPU the compiler targets (SSE2 on x86-64). Source: ``_recurrences.pxi``."""
include "_recurrences.pxi"
