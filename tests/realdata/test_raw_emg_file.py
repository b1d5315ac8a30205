"""Raw EMG given as an OpenSim ``.sto`` (``emg_file`` + ``emg.input: raw``).

Oracle: the raw analog EMG of a real C3D, written by OpenSim's own STOFileAdapter at the analog
rate, must give the same envelopes through ``emg-envelope --emg-sto`` as the C3D itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.c3d import read_c3d
from pipeline.io.opensim_files import read_sto

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WALK = "real-sessions/motonms-unipd-control1/Walking1.c3d"
# C3D analog label -> the template model's EMG names
CHANNELS = {"Right Tibialis anterior": "delt_ant", "Right Soleus": "delt_med",
            "Right Rectus femoris": "biceps", "Right Vastus lateralis": "triceps"}
TOLERANCE = 1e-10  # of each channel's envelope peak


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def _write_sto(path: Path, times_s: np.ndarray, labels: list[str], values: np.ndarray) -> None:
    import opensim

    table = opensim.TimeSeriesTable()
    table.setColumnLabels(labels)
    for t, row in zip(times_s, values, strict=True):
        table.appendRow(float(t), opensim.RowVector([float(v) for v in row]))
    table.addTableMetaDataString("inDegrees", "no")
    opensim.STOFileAdapter.write(table, str(path))


@pytest.fixture
def walk_study(template_study: Path, shared_data: Path) -> Path:
    """The template study with flex1 = a real gait C3D whose EMG maps to the model's names,
    and its raw EMG as ``raw_emg.sto`` (columns = EMG names, analog rate)."""
    src = shared_data / WALK
    shutil.copyfile(src, template_study / "c3d" / "s01" / "flex1.c3d")
    cfg = (template_study / "config.yaml").read_text(encoding="utf-8")
    for old, (label, name) in zip(("EMG1", "EMG2", "EMG3", "EMG4"), CHANNELS.items(),
                                  strict=True):
        cfg = cfg.replace(f'"{old}": {name}', f'"{label}": {name}')
    (template_study / "config.yaml").write_text(cfg, encoding="utf-8")
    rec = read_c3d(src)
    analogs = rec.analogs
    raw = np.column_stack([analogs.values[:, analogs.index(label)] for label in CHANNELS])
    times = rec.first_time_s + np.arange(raw.shape[0]) / analogs.rate_hz
    _write_sto(template_study / "raw_emg.sto", times, list(CHANNELS.values()), raw)
    return template_study


def _envelope(study: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _cli("emg-envelope", "--study", str(study), "--subject", "s01", "--trial", "flex1",
                "--out", str(out), *extra)


@pytest.mark.slow
def test_raw_sto_gives_the_c3d_envelopes(walk_study: Path, tmp_path: Path) -> None:
    from_c3d, from_sto = tmp_path / "c3d_env.sto", tmp_path / "sto_env.sto"
    quality = tmp_path / "quality.json"
    assert _envelope(walk_study, from_c3d).returncode == 0
    proc = _envelope(walk_study, from_sto, "--emg-sto", str(walk_study / "raw_emg.sto"),
                     "--quality", str(quality))
    assert proc.returncode == 0, proc.stderr
    ref, got = read_sto(from_c3d), read_sto(from_sto)
    assert list(got.labels) == list(ref.labels) == list(CHANNELS.values())
    assert got.data.shape == ref.data.shape and len(ref.time_s) > 100
    np.testing.assert_allclose(got.time_s, ref.time_s, atol=1e-6)
    peak = np.max(np.abs(ref.data), axis=0)
    assert np.all(peak > 0)
    worst = float(np.max(np.abs(got.data - ref.data) / peak))
    print(f"raw .sto vs C3D envelopes: max |diff| {worst:.3g} of the channel peak")
    assert worst < TOLERANCE
    assert quality.exists()


@pytest.mark.slow
def test_drop_emg_applies_to_a_raw_sto(walk_study: Path, tmp_path: Path) -> None:
    cfg = walk_study / "config.yaml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        "    dofs: [shoulder_elev, elbow_flex]",
        "    drop_emg: [biceps]\n    dofs: [shoulder_elev, elbow_flex]"), encoding="utf-8")
    full, kept = tmp_path / "full.sto", tmp_path / "kept.sto"
    # the dropped channel is left out; the others are unchanged
    quality = tmp_path / "quality.json"
    assert _envelope(walk_study, kept, "--emg-sto", str(walk_study / "raw_emg.sto"),
                     "--quality", str(quality)).returncode == 0
    assert list(read_sto(kept).labels) == ["delt_ant", "delt_med", "triceps"]
    assert json.loads(quality.read_text(encoding="utf-8"))["dropped"] == ["biceps"]
    # and the file need not hold the dropped channel at all
    rec = read_c3d(walk_study / "c3d" / "s01" / "flex1.c3d")
    names = ["delt_ant", "delt_med", "triceps"]
    raw = np.column_stack([rec.analogs.values[:, rec.analogs.index(label)]
                           for label, name in CHANNELS.items() if name in names])
    _write_sto(tmp_path / "three.sto", rec.first_time_s + np.arange(raw.shape[0])
               / rec.analogs.rate_hz, names, raw)
    assert _envelope(walk_study, full, "--emg-sto", str(tmp_path / "three.sto")).returncode == 0
    np.testing.assert_array_equal(read_sto(full).data, read_sto(kept).data)


@pytest.mark.parametrize("case", ["missing_column", "not_uniform"])
def test_bad_raw_sto_is_one_line_exit_2(walk_study: Path, tmp_path: Path, case: str) -> None:
    n = 500
    times = np.arange(n) / 1000.0
    labels = list(CHANNELS.values())
    if case == "missing_column":
        labels[2] = "bicep"
    else:
        times[n // 2:] += 0.0004
    bad = tmp_path / "bad_raw.sto"
    _write_sto(bad, times, labels, np.random.default_rng(0).normal(size=(n, 4)))
    out = tmp_path / "env.sto"
    proc = _envelope(walk_study, out, "--emg-sto", str(bad))
    assert proc.returncode == 2 and not out.exists()
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "bad_raw.sto" in err
    cause = "'biceps'" if case == "missing_column" else "not uniformly sampled"
    fix = "correct the names" if case == "missing_column" else "resample it"
    assert cause in err and fix in err, err


def test_dry_run_plans_the_envelope_from_the_given_file(template_study: Path) -> None:
    from workflow_helpers import run_snakemake

    walk_study = template_study
    times = np.arange(2000) / 1000.0
    _write_sto(walk_study / "raw_emg.sto", times, list(CHANNELS.values()),
               np.random.default_rng(1).normal(size=(len(times), 4)))
    sheet = walk_study / "trials.tsv"
    lines = sheet.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        if line.startswith("subject\t"):
            line += "\temg_file"
        elif not line.startswith("#"):
            line += "\traw_emg.sto" if "\tflex1\t" in line else "\t"
        out.append(line)
    sheet.write_text("\n".join(out) + "\n", encoding="utf-8")
    cfg = walk_study / "config.yaml"
    assert "\nemg:" not in cfg.read_text(encoding="utf-8")  # the template keeps the default
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\nemg:\n  input: raw\n", encoding="utf-8")
    text = run_snakemake(walk_study, "-n", "-p")
    commands = [c for c in text.splitlines() if " emg-envelope " in c]
    flex1 = [c for c in commands if "--trial flex1 " in c]
    assert len(flex1) == 1 and '--emg-sto "raw_emg.sto"' in flex1[0], commands
    assert all("--emg-sto" not in c for c in commands if c not in flex1)
    jobs = [j for j in text.split("\nrule ") if j.startswith("emg_envelope:")
            and "trial=flex1" in j]
    assert len(jobs) == 1 and "input: raw_emg.sto\n" in jobs[0] and ".c3d" not in jobs[0], jobs
    assert "import_emg" not in text  # the raw file is processed, not placed as envelopes
