"""Shared fixtures: project paths, the real-data folder, and a tiny C3D writer for study tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from c3d_helpers import write_minimal_c3d
from project_paths import PROJECT_ROOT, SHARED_DATA
from workflow_helpers import run_snakemake

__all__ = ["PROJECT_ROOT", "SHARED_DATA", "write_minimal_c3d"]


@pytest.fixture
def shared_data() -> Path:
    """The public reference data in ../shared/data; skip when a fresh clone lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def template_study(tmp_path: Path) -> Path:
    """A study made by ``new-study`` whose C3D files exist (small, valid, 100 Hz / 1 kHz, 9 s,
    the four EMG channels the template maps)."""
    from pipeline.cli.study import new_study
    from pipeline.study import read_sheet

    study = tmp_path / "study"
    new_study(study)
    for row in read_sheet(study / "trials.tsv"):
        write_minimal_c3d(study / row["file"], n_frames=900,
                          analog_labels=("EMG1", "EMG2", "EMG3", "EMG4"))
    return study


def copy_study(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def small_demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``--small`` demo study, run once through the whole workflow for every slow test.

    Tests that change the study must restore it (or work on a copy).
    """
    import subprocess
    import sys

    study = tmp_path_factory.mktemp("demo") / "small"
    subprocess.run([sys.executable, "-m", "pipeline", "demo-study", str(study), "--small"],
                   cwd=PROJECT_ROOT, check=True, timeout=1800, capture_output=True)
    run_snakemake(study)
    return study
