"""Batch inference on Dask: one fitted estimator, many chunks of sequences, any Dask scheduler.

    pip install "fastrnn[dask]"        # dask[array,bag] and distributed

:func:`predict` and :func:`predict_proba` take a Dask array chunked along samples, or a Dask bag of
ragged sequences, and return a lazy Dask collection of the estimator's answers. The model enters
the task graph once, as a single key that every chunk's task depends on: a distributed cluster
ships it to each worker once (a worker that already holds it reuses it for all its chunks), not
once per chunk. Scheduling is Dask's own; fastrnn adds none.

Threads: each task runs with the estimator's ``n_threads`` (None: all cores for the kernels). Dask
runs one task per worker thread, so with several worker threads per machine set ``n_threads=1``
(``estimator.set_params(n_threads=1)``) to keep the machine from being oversubscribed.
"""
import numpy as np

_INSTALL_HINT = ('fastrnn.dask needs the optional Dask extra: pip install "fastrnn[dask]" '
                 '(that is: pip install "dask[array,bag]" distributed)')


def predict(estimator, X):
    """Predict with a fitted fastrnn estimator, chunk by chunk, on Dask.

    ``X``: a Dask array ``(n_samples, n_timesteps, n_features)`` or ``(n_samples, n_timesteps)``
    (univariate), chunked along samples; or a Dask bag whose items are sequences ``(T_i,
    n_features)`` or ``(T_i,)``, each partition predicted as one ragged batch.

    Returns what ``estimator.predict`` returns, lazily: a Dask array with ``X``'s sample chunks,
    ``(n_samples,)`` or ``(n_samples, n_outputs)`` for regressors, ``(n_samples,)`` labels of
    ``classes_.dtype`` for classifiers (per step, ``(n_samples, n_timesteps[, n_outputs])``, for
    ``output="sequence"``); for a bag, a bag with one prediction per item, in order.
    """
    return _apply(estimator, X, "predict")


def predict_proba(estimator, X):
    """Class probabilities of a fitted fastrnn classifier, chunk by chunk, on Dask.

    ``X`` as in :func:`predict`. Returns a lazy float64 Dask array ``(n_samples, n_classes)``
    (``(n_samples, n_timesteps, n_classes)`` for ``output="sequence"``), columns in the order of
    ``classes_``; for a bag, a bag with one ``(n_classes,)`` row per item, in order.
    """
    return _apply(estimator, X, "predict_proba")


def _import_dask():
    try:
        import dask
        import dask.array
        import dask.bag
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT}; importing it failed with: {exc}") from exc
    return dask


def _apply(estimator, X, method):
    dask = _import_dask()
    _check_estimator(estimator, method)
    if isinstance(X, dask.array.Array):
        return _apply_to_array(dask, estimator, X, method)
    if isinstance(X, dask.bag.Bag):
        return X.map_partitions(_predict_partition, _model_key(dask, estimator), method)
    raise TypeError(f"X must be a dask.array.Array of shape (n_samples, n_timesteps[, n_features]) or a "
                    f"dask.bag.Bag of (n_timesteps[, n_features]) sequences; got {type(X).__module__}."
                    f"{type(X).__name__}. For in-memory data call estimator.{method}(X) directly, or wrap it: "
                    f"dask.array.from_array(X, chunks=(1024, -1, -1)).")


def _check_estimator(estimator, method):
    from sklearn.utils.validation import check_is_fitted

    if not callable(getattr(estimator, method, None)):
        what = "a fitted classifier" if method == "predict_proba" else "a fitted estimator"
        raise TypeError(f"estimator must be {what} with a {method} method (e.g. fastrnn.LSTMClassifier); "
                        f"got {type(estimator).__name__}, which has no {method}")
    check_is_fitted(estimator)  # NotFittedError (or TypeError for something that is not an estimator)


def _model_key(dask, estimator):
    """The estimator as one graph key that every chunk's task depends on (so it travels once).

    pure=True names the key after the model's contents: the same fitted model used twice in one
    graph is still one key, and a model changed by a later fit gets a new one.
    """
    return dask.delayed(estimator, pure=True)


def _apply_to_array(dask, estimator, X, method):
    if X.ndim not in (2, 3):
        raise ValueError(f"X must be 2-D (n_samples, n_timesteps) or 3-D (n_samples, n_timesteps, n_features); "
                         f"got {X.ndim}-D with shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers; got dtype {X.dtype}")
    if any(np.isnan(size) for size in X.shape[1:]):
        raise ValueError(f"X's time and feature axes must have known sizes (shape {X.shape}); call "
                         f"X.compute_chunk_sizes() first")
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})  # one chunk = whole sequences
    # One sequence predicted here gives the output's per-sample shape and dtype (and checks the
    # feature count) without computing anything of X. Before the key is made: the first predict after
    # fit switches the model to eval mode, which changes its pickle and so its key.
    probe = getattr(estimator, method)(np.zeros((1,) + X.shape[1:], dtype=X.dtype))
    empty = np.empty((0,) + probe.shape[1:], dtype=probe.dtype)
    in_index = "i" + "tf"[:X.ndim - 1]
    out_index = "i" + "jkl"[:empty.ndim - 1]
    model = _model_key(dask, estimator)
    return dask.array.blockwise(_predict_block, out_index, X, in_index, model, None, method, None, empty, None,
                                new_axes=dict(zip(out_index[1:], empty.shape[1:])), concatenate=True,
                                meta=empty, dtype=empty.dtype, token=f"fastrnn-{method.replace('_', '-')}")


def _predict_block(block, estimator, method, empty):
    """One chunk of samples -> its predictions (on a worker)."""
    if block.shape[0] == 0:
        return empty
    return getattr(estimator, method)(block)


def _predict_partition(sequences, estimator, method):
    """One bag partition -> a list with one prediction per sequence (on a worker)."""
    sequences = list(sequences)
    if not sequences:
        return []
    return list(getattr(estimator, method)(sequences))
