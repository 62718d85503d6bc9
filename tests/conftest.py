"""Shared test settings."""
import os

from hypothesis import HealthCheck, settings

# Numba's first compile can make the first hypothesis example slow; deadlines would be flaky.
settings.register_profile("fastrnn", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastrnn"))
