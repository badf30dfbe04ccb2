"""Test-wide settings.

Hypothesis profiles: ``default`` for a quick local loop, ``ci`` (selected when CI=true)
runs the decoder fuzzers deeper. Fuzz tests opt into depth with ``@settings(parent=FUZZ)``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")
