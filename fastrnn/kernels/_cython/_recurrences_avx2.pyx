# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The time loops of ``_recurrences``, compiled by setup.py with AVX2 and FMA (x86-64 only); imported
instead of it on CPUs that have both. Source: ``_recurrences.pxi``."""
include "_recurrences.pxi"
