"""A small demo study generated once per test session (about half a minute)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.synth import generate_demo_study

    return generate_demo_study(tmp_path_factory.mktemp("demo") / "study", seed=1, small=True)


@pytest.fixture(scope="session")
def small_truth(small_study: Path) -> dict[str, Any]:
    return json.loads((small_study / "truth.json").read_text())
