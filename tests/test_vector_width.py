"""The Numba backend's choice of vector width (fastrnn/kernels/_numba/_vector_width.py).

Each case runs in a fresh interpreter: the choice is made once, before the process's first ``@njit``.
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

REPORT = """
import json, sys
{before}
import llvmlite.binding as llvm
from numba.core import config
{load}
print(json.dumps({{"features": config.CPU_FEATURES, "full_width": _vector_width.FULL_WIDTH_VECTORS,
                  "avx512f": bool(llvm.get_host_cpu_features().get("avx512f"))}}))
"""


# The module alone, not the backend package: with CPU features other than the default the package's
# eagerly compiled functions miss the on-disk cache and compile (~9 s a process on a cold cache).
LOAD_ALONE = """
import importlib.util, os
location = importlib.util.find_spec("fastrnn").submodule_search_locations[0]
spec = importlib.util.spec_from_file_location("_vector_width",
                                              os.path.join(location, "kernels", "_numba", "_vector_width.py"))
_vector_width = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_vector_width)
assert "fastrnn.kernels._numba" not in sys.modules
"""


def _report(before="", alone=False, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME", "FASTRNN_PREFER_256_BIT")}
    environ.update(env)
    load = LOAD_ALONE if alone else "from fastrnn.kernels._numba import _vector_width"
    done = subprocess.run([sys.executable, "-c", REPORT.format(before=before, load=load)], capture_output=True,
                          text=True, env=environ, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_avx512_hosts_get_full_width_vectors_and_others_keep_numbas_default():
    report = _report()
    if report["avx512f"]:
        assert report["full_width"] is True
        assert report["features"].endswith(",-prefer-256-bit")
        assert "+avx512f" in report["features"].split(",")  # the host's own features, kept
    else:
        assert report["full_width"] is False
        assert report["features"] is None


def test_a_users_numba_settings_and_the_opt_out_are_respected():
    assert _report(alone=True, NUMBA_CPU_FEATURES="+avx2,+fma") == {"features": "+avx2,+fma", "full_width": False,
                                                                    "avx512f": _report()["avx512f"]}
    for env in ({"NUMBA_CPU_NAME": "generic"}, {"FASTRNN_PREFER_256_BIT": "1"}):
        report = _report(alone=True, **env)
        assert report["full_width"] is False
        assert "prefer-256-bit" not in (report["features"] or "")  # Numba's own choice (None, or '' by CPU name)


def test_nothing_changes_once_numba_has_compiled_something():
    before = "import numba\nnumba.njit(lambda x: x + 1)(1)"
    report = _report(before=before)
    assert report == {"features": None, "full_width": False, "avx512f": report["avx512f"]}
