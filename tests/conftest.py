"""Shared test fixtures: where the Timeloop reference cases live (../shared beside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TIMELOOP_REFS = SHARED / "reference" / "timeloop"


@pytest.fixture(scope="session")
def timeloop_refs() -> Path:
    if not TIMELOOP_REFS.is_dir():
        pytest.fail(f"Timeloop reference cases not found at {TIMELOOP_REFS}")
    return TIMELOOP_REFS
