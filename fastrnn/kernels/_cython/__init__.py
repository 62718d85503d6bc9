"""Cython backend (being written)."""
raise ImportError("the Cython backend is not written yet")
