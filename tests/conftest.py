"""Shared fixtures: project paths, the real-data folder, and a tiny C3D writer for study tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import ezc3d
import numpy as np
import pytest
from project_paths import PROJECT_ROOT, SHARED_DATA

__all__ = ["PROJECT_ROOT", "SHARED_DATA"]


@pytest.fixture
def shared_data() -> Path:
    """The public reference data in ../shared/data; skip when a fresh clone lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def write_minimal_c3d(path: Path, *, point_rate_hz: float = 100.0, analog_rate_hz: float = 1000.0,
                      n_frames: int = 50, analog_labels: tuple[str, ...] = ("EMG1",)) -> Path:
    """Write a small valid C3D file (two markers, a few analog channels) with ezc3d."""
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [point_rate_hz]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = ["M1", "M2"]
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [analog_rate_hz]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = list(analog_labels)
    rng = np.random.default_rng(0)
    points = np.ones((4, 2, n_frames))
    points[:3] = rng.normal(size=(3, 2, n_frames)) * 10 + 100
    c3d["data"]["points"] = points
    ratio = int(round(analog_rate_hz / point_rate_hz))
    c3d["data"]["analogs"] = rng.normal(size=(1, len(analog_labels), n_frames * ratio)) * 1e-3
    path.parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))
    return path


@pytest.fixture
def template_study(tmp_path: Path) -> Path:
    """A study made by ``new-study`` whose C3D files exist (small, valid, 100 Hz / 1 kHz)."""
    from pipeline.cli.study import new_study
    from pipeline.study import read_sheet

    study = tmp_path / "study"
    new_study(study)
    for _, row in read_sheet(study / "trials.tsv").iterrows():
        write_minimal_c3d(study / row["file"])
    return study


def copy_study(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
