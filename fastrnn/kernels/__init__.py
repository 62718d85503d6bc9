"""Backend registry: which implementation of the recurrent kernels runs.

Backends: ``"reference"`` (plain NumPy, the oracle), ``"numba"`` (fused JIT kernels) and
``"cython"`` (ahead-of-time compiled). ``"auto"`` means the process-wide default: the value given
to :func:`set_backend`, else the ``FASTRNN_BACKEND`` environment variable, else Numba when it
imports, else Cython (with one warning), else the reference.

Every backend module exposes, for each cell in :data:`CELLS`, ``{cell}_forward`` and
``{cell}_backward`` with the contract documented in :mod:`fastrnn.kernels.reference`.
"""
import contextlib
import importlib
import os
import warnings

from ._allocator import allocator_policy, keep_freed_memory  # noqa: F401  (allocator_policy: public here)
from ._openmp import configure_waiting, waiting_policy  # noqa: F401  (waiting_policy: public here)

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
BACKENDS = ("numba", "cython", "reference")

_MODULES = {
    "reference": "fastrnn.kernels.reference",
    "numba": "fastrnn.kernels._numba",
    "cython": "fastrnn.kernels._cython",
}
_loaded = {}
_import_errors = {}
_default = None
_warned_fallback = False


def _load(name):
    if name not in _loaded and name not in _import_errors:
        if name != "reference":
            configure_waiting()  # before libgomp loads (see _openmp.py)
            keep_freed_memory()  # fresh pages on every call cost more than small shapes' arithmetic
        try:
            _loaded[name] = importlib.import_module(_MODULES[name])
        except ImportError as exc:  # missing numba, or Cython extensions not built
            _import_errors[name] = exc
    return _loaded.get(name)


def available_backends():
    """Names of the backends that import on this machine, fastest first."""
    return [name for name in BACKENDS if _load(name) is not None]


def set_backend(name):
    """Set the process-wide default used wherever ``backend="auto"``; ``"auto"`` or None resets it."""
    global _default
    if name is not None and name != "auto":
        resolve_backend(name)  # fail now, not at the next fit
    _default = None if name in (None, "auto") else name


def get_default_backend():
    """The backend name that ``"auto"`` currently resolves to."""
    return resolve_backend("auto")


def resolve_backend(name="auto"):
    """Turn a backend request into the name of a backend that imports here.

    Raises ValueError for an unknown name and ImportError (saying what to install) for a known
    backend that is not available.
    """
    global _warned_fallback
    if name is None or name == "auto":
        chosen = _default or os.environ.get("FASTRNN_BACKEND") or "auto"
        if chosen != "auto":
            return resolve_backend(chosen)
        if _load("numba") is not None:
            return "numba"
        fallback = "cython" if _load("cython") is not None else "reference"
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                f"fastrnn: numba is not available ({_import_errors.get('numba')}); using the "
                f"{fallback} backend. `pip install numba` for the fused JIT kernels.",
                RuntimeWarning, stacklevel=3)
        return fallback
    if name not in _MODULES:
        raise ValueError(f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; got {name!r}")
    if _load(name) is None:
        hint = {"numba": "pip install numba",
                "cython": "reinstall fastrnn from source with a C compiler (pip install .) to build "
                          "the Cython extensions"}.get(name, "")
        raise ImportError(f"fastrnn backend {name!r} is not available: {_import_errors[name]}. {hint}")
    return name


def set_num_threads(n):
    """Threads the compiled kernels (Numba and Cython) split a batch over, process-wide.

    NumPy's BLAS, which runs the GEMMs around the time loops, keeps its own setting
    (``threadpoolctl`` changes it); the estimators' ``n_threads`` sets both.
    """
    for name in ("numba", "cython"):
        module = _load(name)
        if module is not None:
            module.set_num_threads(n)


def get_num_threads():
    """Threads the default compiled backend uses (1 when only the reference is available)."""
    module = _load(resolve_backend("auto"))
    return module.get_num_threads() if hasattr(module, "get_num_threads") else 1


@contextlib.contextmanager
def num_threads(n):
    """Run the block with ``n`` kernel threads in every loaded compiled backend, then restore them."""
    modules = [module for module in map(_load, ("numba", "cython")) if module is not None]
    previous = [module.get_num_threads() for module in modules]
    set_num_threads(n)
    try:
        yield
    finally:
        for module, threads in zip(modules, previous):
            module.set_num_threads(threads)


# ------------------------------------------------------------------ fork safety
# GNU OpenMP does not survive fork(): in a child forked after OpenMP threads started, Numba's ``omp``
# layer terminates the process at the next parallel kernel, and a multi-threaded libgomp region
# hangs. Pre-fork servers do exactly that, so such a child runs the Cython kernels on one thread
# (or the reference, where Cython is missing) and says so once.
_forked_after_openmp = False
_warned_fork = False


def _after_fork_in_child():
    global _forked_after_openmp
    started = [module for module in (_loaded.get("numba"), _loaded.get("cython"))
               if module is not None and module.openmp_threads_started()]
    if started:
        _forked_after_openmp = True
        if _loaded.get("cython") is not None:
            _loaded["cython"].limit_to_one_thread()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def numba_parallel_usable():
    """Whether Numba's parallel (OpenMP) kernels can run in this process: not in a child forked after
    OpenMP threads started (see above)."""
    return not _forked_after_openmp


def _usable_after_fork(name):
    """``name``, or the backend that replaces it in a child forked after Numba's OpenMP threads started."""
    global _warned_fork
    if name != "numba" or not _forked_after_openmp or not _loaded["numba"].openmp_threads_started():
        return name
    fallback = "cython" if _load("cython") is not None else "reference"
    if fallback == "cython":
        _loaded["cython"].limit_to_one_thread()
    if not _warned_fork:
        _warned_fork = True
        warnings.warn(f"fastrnn: this process was forked after Numba's OpenMP threads started, and Numba's "
                      f"OpenMP kernels cannot run here; using the {fallback} backend on one thread. To keep "
                      f"the Numba kernels in worker processes, start them with 'spawn' or 'forkserver', or "
                      f"set NUMBA_THREADING_LAYER=workqueue (or tbb) before the first fit or predict.",
                      RuntimeWarning, stacklevel=3)
    return fallback


def compiled_adam_update():
    """The Numba backend's one-pass Adam update, or None where Numba does not import (the optimiser then
    uses NumPy): split over the threads for large parameters
    (:func:`fastrnn.kernels._numba.optim.adam_update_split`), except in a child forked after OpenMP threads
    started, where the serial :func:`~fastrnn.kernels._numba.optim.adam_update` runs."""
    module = _load("numba")
    if module is None:
        return None
    return module.adam_update_split if numba_parallel_usable() else module.adam_update


def cell_kernels(cell, backend="auto"):
    """Return ``(forward, backward)`` of ``cell`` (one of :data:`CELLS`) for ``backend``."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}; got {cell!r}")
    module = _load(_usable_after_fork(resolve_backend(backend)))
    return getattr(module, f"{cell}_forward"), getattr(module, f"{cell}_backward")
