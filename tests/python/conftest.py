"""Shared pytest setup: hypothesis profiles.

``ci`` (default): 10 derandomized examples per property, no deadline (JAX compiles on
first use). ``dev``: 100 examples; select it with ``STEPWELL_HYPOTHESIS=dev``.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=10, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("dev" if os.environ.get("STEPWELL_HYPOTHESIS") == "dev" else "ci")
