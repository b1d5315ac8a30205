"""The NMS and CEINMS inputs ``bench ceinms`` writes from the real Rajagopal walk (no CEINMS
build, no runs), for tests that need them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from project_paths import SHARED_DATA


def write_bench_ceinms_inputs(out: Path, problems: list[str]) -> dict[str, Any]:
    """``bench ceinms --inputs-only`` into ``out`` (``out/<problem>/{pipeline,ceinms}``); skips
    the test when the reference data are missing."""
    if not (SHARED_DATA / "opensim-core" / "rajagopal-walk").is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    from pipeline.bench import ceinms

    args = argparse.Namespace(data=str(SHARED_DATA), ceinms_source=None, cache_dir=None,
                              work_dir=str(out), problems=problems, repeats=1,
                              max_evaluations=None, inputs_only=True, json=str(out / "b.json"))
    return ceinms.run(args)
