"""Optimisers: the compiled Adam update against the NumPy one and against torch.optim.Adam."""
import numpy as np
import pytest

import fastrnn.nn.optim as optim
from fastrnn.kernels import compiled_adam_update

needs_numba = pytest.mark.skipif(compiled_adam_update() is None, reason="Numba is not installed")

# Same arithmetic in the same dtype; only the order of roundings may differ (fused multiply-adds).
TOLERANCES = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-15)}


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = {"weight": rng.standard_normal((12, 7)).astype(dtype), "bias": rng.standard_normal(12).astype(dtype)}
    grads = [{name: rng.standard_normal(p.shape).astype(dtype) for name, p in params.items()} for _ in range(6)]
    return params, grads


def _run(params, grads, **kwargs):
    params = {name: p.copy() for name, p in params.items()}
    adam = optim.Adam(**kwargs)
    for step_grads in grads:
        adam.update_params(params, step_grads)
    return params, adam


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_adam_matches_numpy_adam(dtype, monkeypatch):
    params, grads = _problem(dtype)
    compiled, adam = _run(params, grads, learning_rate=0.01)
    monkeypatch.setattr(optim, "compiled_adam_update", lambda: None)
    reference, reference_adam = _run(params, grads, learning_rate=0.01)
    for name in params:
        assert compiled[name].dtype == dtype
        np.testing.assert_allclose(compiled[name], reference[name], **TOLERANCES[dtype])
        np.testing.assert_allclose(adam.m[name], reference_adam.m[name], **TOLERANCES[dtype])
        np.testing.assert_allclose(adam.v[name], reference_adam.v[name], **TOLERANCES[dtype])
        assert not np.allclose(compiled[name], params[name])  # the parameters did move


def test_adam_matches_torch_adam():
    """Same update rule as torch.optim.Adam. Epsilon is 0 here because the two place it differently:
    ours is added to sqrt(v) before the bias correction (Kingma & Ba's efficient form), PyTorch's after."""
    torch = pytest.importorskip("torch")
    params, grads = _problem(np.float64, seed=1)
    ours, _ = _run(params, grads, learning_rate=0.01, epsilon=0.0)
    tensors = {name: torch.tensor(p, requires_grad=True) for name, p in params.items()}
    adam = torch.optim.Adam(list(tensors.values()), lr=0.01, betas=(0.9, 0.999), eps=0.0)
    for step_grads in grads:
        for name, tensor in tensors.items():
            tensor.grad = torch.tensor(step_grads[name])
        adam.step()
    for name, tensor in tensors.items():
        np.testing.assert_allclose(ours[name], tensor.detach().numpy(), rtol=1e-10, atol=1e-12)


@needs_numba
def test_compiled_adam_skips_arrays_it_cannot_update_in_place():
    """A non-contiguous parameter goes through NumPy (same result), not through a flattened copy."""
    params, grads = _problem(np.float64)
    base = np.zeros((7, 12))
    base[:] = params["weight"].T
    strided = {"weight": base.T, "bias": params["bias"].copy()}
    assert not strided["weight"].flags.c_contiguous
    adam = optim.Adam(learning_rate=0.01)
    for step_grads in grads:
        adam.update_params(strided, step_grads)
    expected, _ = _run(params, grads, learning_rate=0.01)
    np.testing.assert_allclose(base.T, expected["weight"], **TOLERANCES[np.float64])


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", [2, 3])
def test_adam_split_over_threads_equals_the_serial_update(dtype, parts):
    """The same per-value arithmetic: blocks of a parameter updated on several threads (``parts`` blocks of
    an odd length) give the serial pass's values (a value may fall in a vector loop's scalar remainder in
    one and not the other: TOLERANCES); so does ``adam_update_split``, which splits from its threshold."""
    from fastrnn.kernels._numba import optim as compiled

    rng = np.random.default_rng(4)
    n = compiled.MIN_VALUES_TO_SPLIT + 7
    param, grad, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = rng.random(n).astype(dtype)
    scalars = tuple(dtype(s) for s in (0.9, 0.999, 1e-8, 1e-3))
    serial = [a.copy() for a in (param, grad, m, v)]
    compiled.adam_update(*serial, *scalars)
    split = [a.copy() for a in (param, grad, m, v)]
    compiled.adam_update_parts(*split, *scalars, parts)
    for got, want in zip(split, serial):
        np.testing.assert_allclose(got, want, **TOLERANCES[dtype])
    through_dispatch = [a.copy() for a in (param, grad, m, v)]
    compiled.adam_update_split(*through_dispatch, *scalars)
    for got, want in zip(through_dispatch, serial):
        np.testing.assert_allclose(got, want, **TOLERANCES[dtype])
