"""Depth for the decoder fuzzers: thousands of cases per decoder on every run.

``PROVD_FUZZ_EXAMPLES`` sets the number of examples per fuzz test: CI runs the short
default; a long run before a release, e.g. ``PROVD_FUZZ_EXAMPLES=100000 pytest -q
tests/protocol``, goes to 100,000 and more per decoder.
"""

import os

from hypothesis import HealthCheck, settings

#: Examples per fuzz test (the default keeps the suite quick).
EXAMPLES = int(os.environ.get("PROVD_FUZZ_EXAMPLES", "2000"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
