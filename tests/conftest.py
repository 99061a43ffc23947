"""Shared fixtures: paths to the optional real data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

requires_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is absent")


@pytest.fixture
def data_dir() -> Path:
    """The shared real-data folder (tests using it skip when it is absent)."""
    if not DATA.exists():
        pytest.skip("../shared/data is absent")
    return DATA
