"""The bad-input corpus: every case exits with status 2, one message naming the file, the cause
and the fix, no traceback, and no new or half-written file in the study.

Families: C3D files crafted from a real one (truncated, random bytes, text, empty, broken header,
no analogs, no markers, NaN or dead channels, plates without corners, absurd coordinates), every
study mistake of tests/unit/test_study.py run through ``validate-study``, and faults of the
machine (missing input, output under a regular file, read-only file system, full disk).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ezc3d
import numpy as np
import pytest
from test_study import BAD_CASES

from pipeline.__main__ import main

TRIAL = "c3d/s01/flex1.c3d"  # the template study's first calibration trial (trials.tsv row 7)
MARKERS_OUT = "results/s01/trials/flex1/markers.trc"


@dataclass
class Outcome:
    code: int | None
    stderr: str
    traceback: bool
    new_files: list[str]


def _files(study: Path) -> set[str]:
    return {p.relative_to(study).as_posix() for p in study.rglob("*") if p.is_file()}


def run_cli(capsys: pytest.CaptureFixture[str], study: Path, argv: list[str]) -> Outcome:
    """Run ``python -m pipeline argv`` in-process; record new files under ``study``."""
    before = _files(study)
    capsys.readouterr()
    traceback = False
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    except Exception:  # noqa: BLE001 - an escaping exception is what the corpus counts
        code, traceback = None, True
    err = capsys.readouterr().err
    return Outcome(code, err, traceback or "Traceback" in err,
                   sorted(_files(study) - before))


def assert_clean(outcome: Outcome, *fragments: str) -> None:
    assert not outcome.traceback, outcome.stderr
    assert outcome.code == 2, outcome.stderr
    assert not outcome.new_files, f"left behind: {outcome.new_files}"
    errors = [line for line in outcome.stderr.splitlines() if " ERROR " in line]
    assert errors, outcome.stderr
    assert "Fix:" in outcome.stderr, outcome.stderr
    for fragment in fragments:
        assert fragment in outcome.stderr, outcome.stderr


# ---- C3D files crafted from a real one ----------------------------------------------------

def _truncate(fraction: float) -> Callable[[Path, Path], None]:
    def make(real: Path, target: Path) -> None:
        data = real.read_bytes()
        target.write_bytes(data[: int(len(data) * fraction)])
    return make


def _truncate_at(offset: int) -> Callable[[Path, Path], None]:
    def make(real: Path, target: Path) -> None:
        target.write_bytes(real.read_bytes()[:offset])
    return make


def _random(n_bytes: int) -> Callable[[Path, Path], None]:
    def make(real: Path, target: Path) -> None:
        target.write_bytes(np.random.default_rng(n_bytes).bytes(n_bytes))
    return make


def _patch(offset: int, value: bytes) -> Callable[[Path, Path], None]:
    def make(real: Path, target: Path) -> None:
        data = bytearray(real.read_bytes())
        data[offset:offset + len(value)] = value
        target.write_bytes(bytes(data))
    return make


def _processor(value: int) -> Callable[[Path, Path], None]:
    def make(real: Path, target: Path) -> None:
        data = bytearray(real.read_bytes())
        data[512 * (data[0] - 1) + 3] = value
        target.write_bytes(bytes(data))
    return make


def _text(real: Path, target: Path) -> None:
    target.write_text("Frame,X,Y,Z\n1,0,0,0\n")


def _empty(real: Path, target: Path) -> None:
    target.write_bytes(b"")


# (id, how to make the file from the real one, fragment of the cause)
C3D_CASES = [
    ("truncated_in_header", _truncate_at(100), "cannot be read as C3D"),
    ("truncated_at_511", _truncate_at(511), "cannot be read as C3D"),
    ("truncated_in_parameters", _truncate_at(1200), "cannot be read as C3D"),
    ("truncated_at_start_of_data", _truncate(0.1), "truncated"),
    ("truncated_half", _truncate(0.5), "truncated"),
    ("truncated_one_byte_short", _truncate(0.9999), "truncated"),
    ("random_1kb", _random(1024), "C3D"),
    ("random_100kb", _random(100_000), "C3D"),
    ("text_renamed", _text, "not a C3D file"),
    ("empty", _empty, "file is empty"),
    ("parameter_block_beyond_end", _patch(0, b"\xc8"), "C3D"),
    ("unknown_processor", _processor(99), "C3D"),
]


@pytest.fixture
def real_c3d(shared_data: Path) -> Path:
    return shared_data / "ezc3d-testFiles" / "BTS.c3d"


@pytest.mark.parametrize(("make", "cause"), [c[1:] for c in C3D_CASES],
                         ids=[c[0] for c in C3D_CASES])
@pytest.mark.parametrize("command", ["validate-study", "markers"])
def test_broken_c3d(template_study: Path, real_c3d: Path, capsys: pytest.CaptureFixture[str],
                    make: Callable[[Path, Path], None], cause: str, command: str) -> None:
    make(real_c3d, template_study / TRIAL)
    argv = (["validate-study", str(template_study)] if command == "validate-study" else
            ["markers", "--study", str(template_study), "--subject", "s01", "--trial",
             "flex1", "--out", str(template_study / MARKERS_OUT)])
    assert_clean(run_cli(capsys, template_study, argv), "flex1.c3d", cause)


# ---- C3D files that read, but whose content is wrong ---------------------------------------

def _edit_c3d(path: Path, edit: Callable[[dict], None]) -> None:
    c3d = ezc3d.c3d(str(path))
    edit(c3d)
    c3d.write(str(path))


def _nan_emg(c3d: dict) -> None:
    analogs = c3d["data"]["analogs"]
    analogs[0, 1, 100:] = np.nan
    c3d["data"]["analogs"] = analogs


def _markers_all_nan(c3d: dict) -> None:
    points = c3d["data"]["points"]
    points[:3] = np.nan
    c3d["data"]["points"] = points


def _markers_all_zero(c3d: dict) -> None:
    points = c3d["data"]["points"]
    points[:3] = 0.0
    c3d["data"]["points"] = points


def _markers_in_kilometres(c3d: dict) -> None:
    points = c3d["data"]["points"]
    points[:3] *= 1e5
    c3d["data"]["points"] = points


# (id, edit, step, fragments)
CONTENT_CASES = [
    ("nan_in_one_emg_channel", _nan_emg, "emg-envelope", ["flex1.c3d", "EMG2", "NaN sample"]),
    ("markers_all_nan", _markers_all_nan, "markers", ["flex1.c3d", "no marker data"]),
    ("markers_all_zero", _markers_all_zero, "markers", ["flex1.c3d", "no marker data"]),
    ("markers_absurd_size", _markers_in_kilometres, "markers",
     ["flex1.c3d", "from the lab origin", "POINT:UNITS"]),
]


@pytest.mark.parametrize(("edit", "step", "fragments"), [c[1:] for c in CONTENT_CASES],
                         ids=[c[0] for c in CONTENT_CASES])
def test_wrong_c3d_content(template_study: Path, capsys: pytest.CaptureFixture[str],
                           edit: Callable[[dict], None], step: str,
                           fragments: list[str]) -> None:
    _edit_c3d(template_study / TRIAL, edit)
    out = template_study / ("results/s01/trials/flex1/emg_envelope.sto" if step == "emg-envelope"
                            else MARKERS_OUT)
    argv = [step, "--study", str(template_study), "--subject", "s01", "--trial", "flex1",
            "--out", str(out)]
    assert_clean(run_cli(capsys, template_study, argv), *fragments)


def test_trial_without_markers(template_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from c3d_helpers import write_minimal_c3d

    write_minimal_c3d(template_study / TRIAL, n_frames=900, n_markers=0,
                      analog_labels=("EMG1", "EMG2", "EMG3", "EMG4"))
    for argv in (["validate-study", str(template_study)],
                 ["markers", "--study", str(template_study), "--subject", "s01", "--trial",
                  "flex1", "--out", str(template_study / MARKERS_OUT)]):
        assert_clean(run_cli(capsys, template_study, argv), "flex1.c3d", "no markers")


def test_trial_without_analogs(template_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from c3d_helpers import write_minimal_c3d

    write_minimal_c3d(template_study / TRIAL, n_frames=900, analog_labels=())
    assert_clean(run_cli(capsys, template_study, ["validate-study", str(template_study)]),
                 "flex1.c3d", "channel 'EMG1' is not an analog label", "none")
    out = template_study / "results/s01/trials/flex1/emg_envelope.sto"
    assert_clean(run_cli(capsys, template_study, [
        "emg-envelope", "--study", str(template_study), "--subject", "s01", "--trial", "flex1",
        "--out", str(out)]), "flex1.c3d", "no analog channels")


def test_one_frame_trial(template_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from c3d_helpers import write_minimal_c3d

    write_minimal_c3d(template_study / TRIAL, n_frames=1,
                      analog_labels=("EMG1", "EMG2", "EMG3", "EMG4"))
    assert_clean(run_cli(capsys, template_study, ["validate-study", str(template_study)]),
                 "flex1.c3d", "1 marker frame(s), fewer than the 20 needed")
    assert_clean(run_cli(capsys, template_study, [
        "markers", "--study", str(template_study), "--subject", "s01", "--trial", "flex1",
        "--out", str(template_study / MARKERS_OUT)]), "flex1.c3d", "1 frame")


def test_plate_with_zero_corners(real_c3d: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    study = _plate_study(real_c3d, tmp_path)

    def zero_corners(c3d: dict) -> None:
        corners = np.asarray(c3d["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"])
        c3d["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"] = np.zeros_like(corners)

    _edit_c3d(study / "walk.c3d", zero_corners)
    assert_clean(run_cli(capsys, study, [
        "forceplates", "--study", str(study), "--subject", "s01", "--trial", "walk",
        "--mot", str(study / "results/grf.mot"), "--xml", str(study / "results/loads.xml")]),
        "walk.c3d", "corners")


def _plate_study(real_c3d: Path, tmp_path: Path) -> Path:
    study = tmp_path / "plates"
    study.mkdir()
    shutil.copy(real_c3d, study / "walk.c3d")
    shutil.copy(real_c3d, study / "static.c3d")
    (study / "config.yaml").write_text(
        "models:\n  demo-leg:\n    emg_channels: {}\n    excitations: {}\n"
        "    dofs: [knee_angle_r]\n    force_plates: true\n")
    (study / "subjects.tsv").write_text("subject\tmass_kg\theight_m\tmodel\n"
                                        "s01\t60\t1.7\tdemo-leg\n")
    (study / "trials.tsv").write_text("subject\ttrial\tfile\tkind\trole\n"
                                      "s01\tstatic\tstatic.c3d\tstatic\tnone\n"
                                      "s01\twalk\twalk.c3d\tdynamic\tcalibration\n")
    return study


# ---- study mistakes, through the command line ----------------------------------------------

@pytest.mark.parametrize(("breaker", "fragments"), [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_study_mistake_through_cli(template_study: Path, capsys: pytest.CaptureFixture[str],
                                   breaker: Callable[[Path], None],
                                   fragments: list[str]) -> None:
    breaker(template_study)
    outcome = run_cli(capsys, template_study, ["validate-study", str(template_study)])
    assert_clean(outcome, *fragments)


def test_unknown_subject_to_emg_maxima(template_study: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean(run_cli(capsys, template_study, [
        "emg-maxima", "--study", str(template_study), "--subject", "s99",
        "--out", str(template_study / "results/s99/emg_maxima.json")]),
        "subjects.tsv", "no subject 's99'")


# ---- faults of the machine -----------------------------------------------------------------

def test_missing_input_on_command_line(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean(run_cli(capsys, tmp_path, [
        "emg-normalise", "--envelope", str(tmp_path / "env.sto"), "--maxima",
        str(tmp_path / "maxima.json"), "--markers-trc", str(tmp_path / "m.trc"),
        "--out", str(tmp_path / "emg.sto")]), "maxima.json", "no such file")


def test_output_under_a_regular_file(template_study: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (template_study / "results").write_text("not a folder")
    assert_clean(run_cli(capsys, template_study, [
        "markers", "--study", str(template_study), "--subject", "s01", "--trial", "flex1",
        "--out", str(template_study / MARKERS_OUT)]),
        "results", "regular file")


def test_log_under_a_regular_file(template_study: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (template_study / "logs").write_text("not a folder")
    assert_clean(run_cli(capsys, template_study, [
        "--log", str(template_study / "logs/markers.log"), "validate-study",
        str(template_study)]), "logs", "Fix:")


@contextlib.contextmanager
def small_file_system(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (skips where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_disk_full(template_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with small_file_system(template_study / "results", "64k") as results:
        filler = results / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as fh:
            fh.write(b"\0" * 200_000)
        assert_clean(run_cli(capsys, template_study, [
            "markers", "--study", str(template_study), "--subject", "s01", "--trial",
            "flex1", "--out", str(template_study / MARKERS_OUT)]),
            "markers.trc", "no space left")


def test_read_only_output_folder(template_study: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    with small_file_system(template_study / "results", "1m") as results:
        subprocess.run(["mount", "-o", "remount,ro", str(results)], check=True)
        assert_clean(run_cli(capsys, template_study, [
            "markers", "--study", str(template_study), "--subject", "s01", "--trial",
            "flex1", "--out", str(template_study / MARKERS_OUT)]), "results", "read-only")
        assert_clean(run_cli(capsys, template_study, [
            "--log", str(results / "markers.log"), "validate-study", str(template_study)]),
            "markers.log", "read-only")


def test_snakemake_prints_the_problems_not_a_stack(template_study: Path) -> None:
    """Under Snakemake an invalid study stops before the first job with the same lines."""
    import sys

    from project_paths import PROJECT_ROOT

    (template_study / "c3d/s01/flex2.c3d").unlink()
    before = _files(template_study)
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile",
                             str(PROJECT_ROOT / "Snakefile"), "--cores", "1", "--directory",
                             str(template_study)], capture_output=True, text=True,
                            check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "trials.tsv row 8: file c3d/s01/flex2.c3d does not exist. Fix:" in output
    for noise in ("Traceback", "ConfigError in file", "common.smk", "line "):
        assert noise not in output, output
    assert {f for f in _files(template_study) - before if not f.startswith(".snakemake")} == set()


def test_failed_scale_rerun_leaves_no_previous_side_files(tmp_path: Path) -> None:
    """A scale rerun that fails removes the previous run's scale_set.xml, scaled_only.osim,
    static_pose.mot and setup_scale.xml, so they cannot pass for the new run's."""
    from pipeline.errors import ScalingError
    from pipeline.osim.scale import (
        SCALE_SET_NAME,
        SCALED_ONLY_NAME,
        SETUP_NAME,
        STATIC_POSE_NAME,
        scale_model,
    )

    out_dir = tmp_path / "results/s01/model"
    out_dir.mkdir(parents=True)
    stale = [out_dir / n for n in (SCALE_SET_NAME, SCALED_ONLY_NAME, STATIC_POSE_NAME,
                                   SETUP_NAME)]
    for path in stale:
        path.write_text("previous run")
    with pytest.raises(ScalingError, match="model file does not exist"):
        scale_model(tmp_path / "missing.osim", tmp_path / "static.trc",
                    out_model=out_dir / "scaled.osim", report_path=out_dir / "report.json",
                    mass_kg=70.0)
    assert not [p.name for p in stale if p.exists()]
