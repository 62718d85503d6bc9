"""How fastrnn loads libgomp: a short spin unless the user chose (see fastrnn/kernels/_openmp.py)."""
import os
import subprocess
import sys

import pytest

CODE = ("import os, fastrnn.kernels as k; k.available_backends(); "
        "print(os.environ.get('GOMP_SPINCOUNT')); print(k.waiting_policy())")
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libgomp is chosen on Linux only")


def _run(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", CODE], check=False, capture_output=True, text=True, timeout=300,
                          env={**clean, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    spin_left, policy = done.stdout.strip().splitlines()[-2:]
    return spin_left, policy


@linux
def test_short_spin_by_default_and_the_environment_restored():
    spin_left, policy = _run()
    assert spin_left == "None"  # child processes do not inherit fastrnn's choice
    if "not found" not in policy:
        assert policy == "spin 10000 pause turns, then sleep (chosen by fastrnn)"


@linux
def test_users_choice_stands():
    assert _run(GOMP_SPINCOUNT="500") == ("500", "set by the user: GOMP_SPINCOUNT=500")
    assert _run(OMP_WAIT_POLICY="PASSIVE")[1] == "set by the user: OMP_WAIT_POLICY=PASSIVE"
