"""``python -m pipeline`` ends without the interpreter's teardown (pipeline.__main__.exit_now):
its exit status, standard streams, log file and outputs must all survive that."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.project_paths import PROJECT_ROOT


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def test_bad_input_exit_status_and_log_file_survive_the_fast_exit(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    missing = tmp_path / "no-study"
    result = _cli("--log", str(log), "validate-study", str(missing))
    assert result.returncode == 2
    assert "study folder does not exist" in result.stderr
    assert "study folder does not exist" in log.read_text(encoding="utf-8")


def test_outputs_and_stdout_survive_the_fast_exit(tmp_path: Path) -> None:
    study = tmp_path / "study"
    result = _cli("new-study", str(study))
    assert result.returncode == 0, result.stderr
    assert (study / "config.yaml").stat().st_size > 0
    assert (study / "trials.tsv").read_text(encoding="utf-8").startswith(("#", "subject"))
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("pipeline ")
