"""The NaN/inf check that inputs, states, parameters and outputs go through (apart from _validation,
which imports scikit-learn: the layers must not)."""
import numpy as np


def all_finite(array):
    """True if ``array`` holds no NaN or infinity.

    Sums first: a float sum is finite only if every value is, unless the sum overflows, and only then
    is each value looked at. That skips the boolean temporary the size of ``array`` (and half the time
    on large inputs). Integer and boolean arrays are always finite.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "fc":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return True
    return bool(np.isfinite(array).all())
