"""The C-heap policy fastrnn sets when a compiled backend loads (see fastrnn/kernels/_allocator.py)."""
import os
import platform
import subprocess
import sys

import pytest

CODE = ("import fastrnn.kernels as k; k.available_backends(); print(k.allocator_policy())")
glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                 reason="the policy applies to glibc's allocator only")


def _policy(**env):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "FASTRNN_MALLOC_TUNING")}
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300,
                          env={**clean, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@glibc_linux
def test_freed_memory_is_kept_by_default():
    assert _policy().startswith("freed memory kept up to 64 MiB")


@glibc_linux
def test_users_malloc_settings_and_the_opt_out_stand():
    assert _policy(MALLOC_TRIM_THRESHOLD_="131072") == "set by the user: MALLOC_TRIM_THRESHOLD_"
    assert _policy(FASTRNN_MALLOC_TUNING="0") == "glibc defaults (FASTRNN_MALLOC_TUNING=0)"
