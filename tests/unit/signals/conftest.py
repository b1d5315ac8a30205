"""A synthetic trial with known ground reactions and EMG envelopes (written with ezc3d)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.bench.c3d import write_synthetic_c3d


@pytest.fixture(scope="session")
def synthetic_trial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("c3d") / "trial.c3d"
    truth = write_synthetic_c3d(path, duration_s=6.0, n_markers=8, n_emg=4,
                                gap=(3, 100, 5))
    return path, truth
