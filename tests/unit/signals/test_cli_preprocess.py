"""The preprocess subcommands on a small synthetic study: outputs, and clean failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.bench.c3d import write_synthetic_c3d

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.cli.study import new_study
    from pipeline.study import read_sheet

    root = tmp_path_factory.mktemp("study") / "study"
    new_study(root)
    for row in read_sheet(root / "trials.tsv"):
        write_synthetic_c3d(root / row["file"], duration_s=4.0, n_markers=6, n_emg=4)
    cfg = (root / "config.yaml").read_text(encoding="utf-8")
    cfg = cfg.replace('"EMG1"', '"EMG01"').replace('"EMG2"', '"EMG02"')
    cfg = cfg.replace('"EMG3"', '"EMG03"')  # EMG4 stays: absent from the file
    cfg = cfg.replace("force_plates: false", "force_plates: true")
    cfg += "\nforce_plates:\n  foot_markers: {left: [LHEE], right: [RHEE]}\n"
    (root / "config.yaml").write_text(cfg, encoding="utf-8")
    return root


def _trial(study: Path, *rest: str) -> list[str]:
    return ["--study", str(study), "--subject", "s01", *rest]


def test_markers_forceplates_events(study: Path, tmp_path: Path) -> None:
    trc, mot, xml, events = (tmp_path / n for n in ("markers.trc", "grf.mot", "loads.xml",
                                                      "events.json"))
    assert main(["markers", *_trial(study, "--trial", "flex1", "--out", str(trc))]) == 0
    assert main(["forceplates", *_trial(study, "--trial", "flex1", "--mot", str(mot),
                                        "--xml", str(xml))]) == 0
    assert main(["events", *_trial(study, "--trial", "flex2", "--out", str(events))]) == 0
    assert trc.read_text().startswith("PathFileType\t4")
    assert "ground_force_r_vy" in mot.read_text() and "<datafile>grf.mot</datafile>" in \
        xml.read_text()
    result = json.loads(events.read_text())
    assert result["source"] == "grf" and len(result["windows"]) == 2
    assert all(0.5 <= t0 < t1 <= 8.0 for t0, t1 in result["windows"])  # flex2: 0.5-8.0 s


def test_missing_emg_channel_fails_cleanly_in_process(study: Path, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "env.sto"
    assert main(["emg-envelope", *_trial(study, "--trial", "flex1", "--out", str(out))]) == 2
    assert "['EMG4']" in capfd.readouterr().err and not out.exists()


def test_cli_error_is_one_line_exit_2_no_output(study: Path, tmp_path: Path) -> None:
    bad = study / "c3d" / "s01" / "flex2.c3d"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 3])
    out = tmp_path / "markers.trc"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "markers", *_trial(study, "--trial", "flex2",
                                                                  "--out", str(out))],
            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    finally:
        bad.write_bytes(good)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and str(bad) in errors[0] and "truncated" in errors[0]
    assert not out.exists() and not list(tmp_path.iterdir())
