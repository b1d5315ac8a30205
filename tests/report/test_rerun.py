"""Rerun selectivity: a changed setting reruns only the rules that depend on it.

The mechanism (each rule's params carry the hash of the config sections it reads) is tested on a
miniature workflow; the same check on the real workflow is in test_workflow.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = {"markers": {"cutoff_hz": 6.0}, "opensim": {"ik": {"max_rms_error_m": 0.02}},
          "calibration": {"methods": ["gradient"], "optimiser": {"max_iterations": 2000}}}


def planned_rules(output: str) -> set[str]:
    """Rule names a ``snakemake -n`` run would execute (from its job-stats table)."""
    table = output.split("Job stats:")[-1] if "Job stats:" in output else ""
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)
            if m.group(1) not in {"total", "job", "count"}}


def _snakemake(workdir: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile",
                             str(HERE / "selectivity" / "Snakefile"), "--cores", "1",
                             "--directory", str(workdir), *args],
                            capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_changed_optimiser_setting_reruns_only_calibration_and_report(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    _snakemake(tmp_path)
    assert planned_rules(_snakemake(tmp_path, "-n")) == set()  # up to date
    changed = {**CONFIG, "calibration": {**CONFIG["calibration"],
                                         "optimiser": {"max_iterations": 10}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(changed))
    assert planned_rules(_snakemake(tmp_path, "-n")) == {"calibrate", "report", "all"}
    changed["markers"] = {"cutoff_hz": 8.0}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(changed))
    assert planned_rules(_snakemake(tmp_path, "-n")) == {"markers", "ik", "calibrate", "report",
                                                          "all"}
