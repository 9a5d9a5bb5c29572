"""Shared fixtures of the suite=dct tests: a small repository in the study's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

STUDY_FIXTURE = Path(__file__).parent / "study_fixture"
"""Files of charbench's own in the study's formats (scenarios, harness constants)."""


@pytest.fixture
def study_root() -> Path:
    return STUDY_FIXTURE
