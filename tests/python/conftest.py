"""Shared pytest setup: hypothesis profiles, and a private compilation cache.

``ci`` (default): 10 derandomized examples per property, no deadline (JAX compiles on
first use). ``dev``: 100 examples; select it with ``STEPWELL_HYPOTHESIS=dev``.

The on-disk compilation cache (``stepwell.cache``) of a test session is a fresh temp
folder (``STEPWELL_CACHE_DIR``, inherited by the subprocesses tests start), so results
never depend on a user's ``~/.cache/stepwell``. ``STEPWELL_TEST_CACHE_DIR`` names a
folder to keep between runs instead (faster local reruns).

``run_target``: the numeric suites take it to run on each of
``target_checks.suite_targets()``: cpu; cpu-generic (baseline x86-64); vulkan (marked ``vulkan``); cuda and rocm
(marked ``gpu``) where a device is found; or ``STEPWELL_TEST_TARGETS=cpu,vulkan:...``.
It is module-scoped, so a suite compiles its module once per target; a target that
cannot run here skips with the reason. Module-level numpy Generators are reseeded per
test (``seeding.py``): inputs never depend on test order. Vulkan is pinned to Mesa's lavapipe
(``VK_ICD_FILENAMES``) when that is installed and no driver was chosen.
"""

import os

import pytest
from hypothesis import settings

from seeding import per_test_rngs  # noqa: F401  (autouse: per-test seeds, seeding.py)
from target_checks import pin_lavapipe, target_params

settings.register_profile("ci", max_examples=10, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("dev" if os.environ.get("STEPWELL_HYPOTHESIS") == "dev" else "ci")
pin_lavapipe()


@pytest.fixture(scope="module", params=target_params())
def run_target(request):
    """A resolved target the numeric suites run on; skips (with the reason) if it cannot run here."""
    import stepwell as sw
    available = sw.targets.available(request.param)
    if not available:
        pytest.skip(f"target '{request.param}' cannot run here: {available.reason}")
    return sw.targets.get(request.param)


@pytest.fixture(scope="session", autouse=True)
def _private_compile_cache(tmp_path_factory):
    keep = os.environ.get("STEPWELL_TEST_CACHE_DIR")
    folder = keep or str(tmp_path_factory.mktemp("stepwell-cache"))
    saved = os.environ.get("STEPWELL_CACHE_DIR")
    os.environ["STEPWELL_CACHE_DIR"] = folder
    yield folder
    if saved is None:
        os.environ.pop("STEPWELL_CACHE_DIR", None)
    else:
        os.environ["STEPWELL_CACHE_DIR"] = saved
