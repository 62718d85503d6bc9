"""pytest-benchmark settings for the bench/ suite (never collected by the unit run `pytest tests`).

Options: ``--bench-threads N`` (default 2, every system), ``--bench-backends numba,cython`` (default:
every available fastrnn backend except the slow ``reference``). Baselines are stored in
``bench/.benchmarks`` unless ``--benchmark-storage`` says otherwise.
"""
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_STORAGE = "file://./.benchmarks"


def pytest_addoption(parser):
    group = parser.getgroup("fastrnn bench")
    group.addoption("--bench-threads", type=int, default=2, help="threads for every system (default 2)")
    group.addoption("--bench-backends", default=None,
                    help="comma-separated fastrnn backends (default: available ones except 'reference')")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Runs before pytest-benchmark opens its storage: keep baselines next to the suite, whatever the cwd.
    if config.getoption("benchmark_storage", None) == _DEFAULT_STORAGE:
        config.option.benchmark_storage = "file://" + os.path.join(HERE, ".benchmarks")


def selected_backends(config):
    from fastrnn.kernels import available_backends

    requested = config.getoption("--bench-backends")
    available = available_backends()
    if requested:
        return [b.strip() for b in requested.split(",") if b.strip()]
    return [b for b in available if b != "reference"] or ["reference"]


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config))


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    """Set the thread count of every system once for the session."""
    from runners import peer_status, set_threads

    peer_status()  # import the peers first so that set_threads reaches them
    threads = request.config.getoption("--bench-threads")
    set_threads(threads)
    return threads


@pytest.fixture(scope="session")
def problem_cache():
    """Inputs and shared initial weights per (shape, cell), built once per session."""
    return {}
