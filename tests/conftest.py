"""Shared test fixtures: where the vendored reference cases live (tests/data, see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The suite runs the compiled model kernel everywhere (dse.model.kernel), one mapping included,
# so no test's path depends on which test loaded numba first; tests/test_kernel.py compares it
# with the numpy passes. `DSE_KERNEL=numpy pytest` runs the whole suite on the numpy passes.
os.environ.setdefault("DSE_KERNEL", "numba")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
TIMELOOP_REFS = DATA / "timeloop"
SPARSELOOP_REFS = DATA / "sparseloop"
TIMELOOP_RAW = DATA / "timeloop_raw"


@pytest.fixture(scope="session")
def timeloop_refs() -> Path:
    if not TIMELOOP_REFS.is_dir():
        pytest.fail(f"Timeloop reference cases not found at {TIMELOOP_REFS}")
    return TIMELOOP_REFS
