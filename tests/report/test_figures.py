"""Figures: every file is written, non-empty, and shows the numbers of the data behind it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_results import DOFS, MTUS, make_study

from pipeline.plots import (
    Signals,
    TrialRecording,
    TrialResult,
    annotations_of,
    fiber_length_figure,
    grf_figure,
    marker_error_figure,
    moment_tracking_figure,
    parameters_figure,
)
from pipeline.plots.load import per_trial_metrics, read_json
from pipeline.study import load_study

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_STEMS = {"moments_gradient", "parameters_gradient", "forces_gradient",
                  "fiber_lengths_gradient", "excitations_gradient_flex1",
                  "excitations_gradient_flex2", "moments_annealing", "parameters_annealing",
                  "forces_annealing", "fiber_lengths_annealing", "excitations_annealing_flex1",
                  "excitations_annealing_flex2", "loss", "methods", "marker_errors", "grf",
                  "angles", "moments_per_kg", "emg"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study_with_figures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_study(tmp_path_factory.mktemp("figures") / "study", subjects=("s01",))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "figures", "--study", str(root), "--subject", "s01",
         "--out-dir", str(root / "results/s01/figures")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr  # the command logs what it does
    return root


def test_every_figure_file_is_written_and_non_empty(study_with_figures: Path) -> None:
    folder = study_with_figures / "results/s01/figures"
    manifest = json.loads((folder / "manifest.json").read_text())
    stems = {Path(e["file"]).stem for e in manifest["figures"]}
    assert stems == EXPECTED_STEMS
    for entry in manifest["figures"]:
        data = (folder / entry["file"]).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, entry["file"]
        assert entry["caption"].endswith(".") and entry["title"]


def test_figures_drawn_by_two_workers_are_the_same_files(study_with_figures: Path,
                                                          tmp_path: Path) -> None:
    """--threads 2 (forked workers) writes byte-identical files and the same manifest; a figure
    that fails in a worker fails the command with its usual message."""
    out = tmp_path / "parallel"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "figures", "--study", str(study_with_figures),
         "--subject", "s01", "--out-dir", str(out), "--threads", "2"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    folder = study_with_figures / "results/s01/figures"
    serial = json.loads((folder / "manifest.json").read_text())
    parallel = json.loads((out / "manifest.json").read_text())
    assert parallel["figures"] == serial["figures"]
    for entry in serial["figures"]:
        assert (out / entry["file"]).read_bytes() == (folder / entry["file"]).read_bytes(), \
            entry["file"]


def _figures_cli(study: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "figures", "--study", str(study),
                           "--subject", "s01", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)


def test_figures_drawn_in_parts_give_the_same_folder(study_with_figures: Path,
                                                     tmp_path: Path) -> None:
    """The workflow's steps (--part data, --part per method, then --parts) give the folder and
    manifest of one run: the same entries in the same order and byte-identical files, the parts'
    linked (one file on disk) rather than copied."""
    parts = {name: tmp_path / name for name in ("data", "gradient", "annealing")}
    for name, folder in parts.items():
        result = _figures_cli(study_with_figures, "--part", name, "--out-dir", str(folder))
        assert result.returncode == 0, result.stderr
    out = tmp_path / "figures"
    # Any order of the folders: the manifest puts the data first, then the methods' order.
    result = _figures_cli(study_with_figures, "--out-dir", str(out), "--parts",
                          *(str(parts[n]) for n in ("annealing", "data", "gradient")))
    assert result.returncode == 0, result.stderr
    folder = study_with_figures / "results/s01/figures"
    once = json.loads((folder / "manifest.json").read_text())
    data_manifest = json.loads((parts["data"] / "manifest.json").read_text())
    assert (data_manifest["part"], data_manifest["methods"]) == ("data", [])
    assert [Path(e["file"]).stem for e in data_manifest["figures"]] == [
        "angles", "moments_per_kg", "emg", "marker_errors", "grf"]
    gradient = json.loads((parts["gradient"] / "manifest.json").read_text())
    assert {e["method"] for e in gradient["figures"]} == {"gradient"}
    assert json.loads((out / "manifest.json").read_text())["figures"] == once["figures"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folder.iterdir())
    for entry in once["figures"]:
        assert (out / entry["file"]).read_bytes() == (folder / entry["file"]).read_bytes(), \
            entry["file"]
    assert (out / "emg.png").stat().st_ino == (parts["data"] / "emg.png").stat().st_ino
    assert ((out / "moments_gradient.png").stat().st_ino
            == (parts["gradient"] / "moments_gradient.png").stat().st_ino)


def test_figure_parts_from_elsewhere_are_refused(study_with_figures: Path,
                                                 tmp_path: Path) -> None:
    """A folder that is not a part of the subject's figures, or a missing part, stops the
    command with the file, the cause and the fix, and writes nothing."""
    from pipeline.errors import ConfigError
    from pipeline.plots.subject import write_subject_figures

    study = load_study(study_with_figures, check_files=False)
    data, out = tmp_path / "data", tmp_path / "out"
    write_subject_figures(study, "s01", data, methods=["gradient"], part="data")
    (tmp_path / "empty").mkdir()
    cases = [([tmp_path / "empty"], "not the manifest of a part.*Fix: draw that part"),
             ([study_with_figures / "results/s01/figures"],
              "not the manifest of a part.*Fix: draw that part"),
             ([data], "no part folder for gradient.*Fix: draw them first")]
    for folders, message in cases:
        with pytest.raises(ConfigError, match=message):
            write_subject_figures(study, "s01", out, methods=["gradient"], parts=folders)
        assert not out.exists()
    with pytest.raises(ConfigError, match="both a part of the figures and the output"):
        write_subject_figures(study, "s01", data, methods=[], parts=[data])
    with pytest.raises(ConfigError, match="--part motion: not the movement data"):
        write_subject_figures(study, "s01", out, methods=["gradient"], part="motion")
    assert (data / "emg.png").is_file() and not out.exists()


def test_a_figure_failing_in_a_worker_fails_in_the_parent(study_with_figures: Path,
                                                          tmp_path: Path) -> None:
    from pipeline.plots.subject import FigureJob, _draw_all

    def broken():
        raise ValueError("cannot draw this one")

    def fine():
        return marker_error_figure([], max_rms_error_m=None)

    jobs = [FigureJob("ok", "OK", "Fine.", fine), FigureJob("bad", "Bad", "Broken.", broken)]
    with pytest.raises(ValueError, match="cannot draw this one"):
        _draw_all(jobs, tmp_path, fmt="png", subject="s01", workers=2)
    assert (tmp_path / "ok.png").read_bytes().startswith(PNG_MAGIC)


def test_panel_numbers_equal_metrics_json(study_with_figures: Path) -> None:
    folder = study_with_figures / "results/s01/figures"
    manifest = json.loads((folder / "manifest.json").read_text())
    for method in ("gradient", "annealing"):
        metrics = per_trial_metrics(read_json(
            study_with_figures / f"results/s01/calibration/{method}/metrics.json"))
        entry = next(e for e in manifest["figures"] if e["file"] == f"moments_{method}.png")
        notes = entry["annotations"]
        assert metrics["flex2"]  # the validation trial is in metrics.json
        for trial, dofs in metrics.items():
            for dof, values in dofs.items():
                assert notes[f"{trial}/{dof}/source"] == "metrics.json"
                assert notes[f"{trial}/{dof}/rmse_nm"] == pytest.approx(values["rmse_nm"])
                assert notes[f"{trial}/{dof}/r2"] == pytest.approx(values["r2"])


def _trial(name: str, role: str, rng: np.random.Generator) -> TrialResult:
    time_s = np.linspace(0, 1, 101)
    reference = np.vstack([np.sin(2 * np.pi * time_s), np.cos(2 * np.pi * time_s)]) * 10
    predicted = reference + rng.normal(0, 0.3, reference.shape)
    return TrialResult(name, role, id_moments=Signals(time_s, DOFS, reference),
                       predicted_moments=Signals(time_s, DOFS, predicted),
                       metrics={DOFS[0]: {"rmse_nm": 1.2345, "r2": 0.9321}} if role ==
                       "validation" else {})


def test_tracking_titles_show_metrics_json_numbers() -> None:
    rng = np.random.default_rng(1)
    fig = moment_tracking_figure([_trial("walk2", "validation", rng),
                                  _trial("walk1", "calibration", rng)], method="gradient")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    validation = next(t for t in titles if t.startswith("walk2") and DOFS[0] in t)
    assert re.search(r"RMSE 1\.23 N·m, R² 0\.932$", validation.splitlines()[1])
    assert titles[0].startswith("walk1 (calibration)")  # calibration rows come first
    notes = annotations_of(fig)
    assert notes[f"walk2/{DOFS[0]}/rmse_nm"] == 1.2345
    assert notes[f"walk1/{DOFS[0]}/source"] == "computed"
    assert all(len(ax.lines) == 2 for ax in fig.axes if ax.get_title())


def test_tracking_computes_rmse_and_r2_when_metrics_absent() -> None:
    time_s = np.linspace(0, 1, 201)
    reference = np.sin(2 * np.pi * time_s)[None, :]
    predicted = reference + 0.1  # constant offset: RMSE 0.1, R² = 1 - 0.01 / var
    trial = TrialResult("t", "calibration", id_moments=Signals(time_s, ("knee",), reference),
                        predicted_moments=Signals(time_s, ("knee",), predicted))
    notes = annotations_of(moment_tracking_figure([trial]))
    assert notes["t/knee/rmse_nm"] == pytest.approx(0.1)
    assert notes["t/knee/r2"] == pytest.approx(1 - 0.01 / np.var(reference), rel=1e-9)


def test_parameter_figure_records_values_se_and_flags() -> None:
    parameters = {"mtus": {m: {"c1": {"value": -0.95, "initial": -0.5, "lower": -0.95,
                                      "upper": -0.05, "at_bound": True, "se": 0.01}}
                           for m in MTUS[:3]},
                  "identifiability": {"flags": [f"c1/{MTUS[0]}"]}}
    fig = parameters_figure(parameters, method="gradient")
    notes = annotations_of(fig)
    assert notes["n_at_bound"] == 3
    assert notes[f"{MTUS[1]}/c1/value"] == -0.95 and notes[f"{MTUS[1]}/c1/se"] == 0.01
    assert "3 at a bound" in fig.get_suptitle()


def test_fiber_length_ranges_and_band() -> None:
    time_s = np.linspace(0, 1, 11)
    lengths = Signals(time_s, ("a", "b"), np.vstack([np.linspace(0.4, 1.1, 11),
                                                      np.full(11, 1.0)]))
    fig = fiber_length_figure([TrialResult("t", "validation", fiber_lengths=lengths)],
                              band=(0.5, 1.5))
    notes = annotations_of(fig)
    assert notes["band"] == [0.5, 1.5]
    assert notes["a/min"] == pytest.approx(0.4) and notes["a/max"] == pytest.approx(1.1)
    assert notes["b/min"] == notes["b/max"] == 1.0


def test_experiment_figures_read_opensim_column_names() -> None:
    time_s = np.linspace(0, 1, 11)
    names = ("1_ground_force_vx", "1_ground_force_vy", "1_ground_force_vz", "1_ground_force_px",
             "1_ground_force_py", "1_ground_force_pz", "2_ground_force_vy")
    values = np.vstack([np.zeros(11), np.linspace(0, 800, 11), np.zeros(11), np.ones(11),
                        np.zeros(11), np.ones(11), np.full(11, 300.0)])
    errors = Signals(time_s, ("marker_error_RMS", "marker_error_max"),
                     np.vstack([np.full(11, 0.005), np.full(11, 0.01)]))
    recordings = [TrialRecording("walk", "validation", marker_errors=errors,
                                 grf=Signals(time_s, names, values))]
    notes = annotations_of(grf_figure(recordings))
    assert notes["walk/1/peak_vertical_n"] == 800.0 and notes["walk/2/peak_vertical_n"] == 300.0
    notes = annotations_of(marker_error_figure(recordings, max_rms_error_m=0.02))
    assert notes["walk/mean_rms_m"] == pytest.approx(0.005)


def test_empty_inputs_give_explained_panels_not_errors() -> None:
    for fig in (moment_tracking_figure([]), grf_figure([]), marker_error_figure([]),
                parameters_figure({})):
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any(texts), "an empty figure must say why"


def test_figures_cli_rejects_unknown_subject(study_with_figures: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline", "figures", "--study",
                             str(study_with_figures), "--subject", "nobody", "--out-dir",
                             str(study_with_figures / "x")], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no subject 'nobody'" in result.stderr


def test_svg_output_keeps_panel_text(tmp_path: Path) -> None:
    root = make_study(tmp_path / "study", subjects=("s01",), methods=("gradient",))
    from pipeline.plots.subject import write_subject_figures

    study = load_study(root, check_files=False)
    write_subject_figures(study, "s01", root / "svg", methods=["gradient"], fmt="svg")
    svg = (root / "svg/moments_gradient.svg").read_text()
    rmse = per_trial_metrics(read_json(root / "results/s01/calibration/gradient/metrics.json"))
    expected = f"RMSE {rmse['flex2'][DOFS[0]]['rmse_nm']:.3g} N·m"
    assert expected in svg


def test_save_figure_pins_ticks_for_the_save_only(tmp_path: Path) -> None:
    """save_figure computes the ticks once and lays the figure out itself (speed); the
    figure keeps its automatic ticks and layout engine, and an offset axis its offset."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.ticker import AutoLocator, FixedLocator, ScalarFormatter

    from pipeline.plots.style import new_figure, pinned_ticks, save_figure

    fig, axes = new_figure(1, 2)
    axes[0, 0].plot([0.0, 4.0], [0.0, 1.0])
    axes[0, 1].plot([0.0, 1.0], [1e6, 1e6 + 2.0])  # labels relative to an offset
    with pinned_ticks(fig):
        assert isinstance(axes[0, 0].xaxis.get_major_locator(), FixedLocator)
        ticks = list(axes[0, 0].get_xticks())
        assert ticks[0] >= axes[0, 0].get_xlim()[0] and ticks[-1] <= axes[0, 0].get_xlim()[1]
        labels = [t.get_text() for t in axes[0, 0].get_xticklabels()]
        assert [float(label) for label in labels] == pytest.approx(ticks)
        assert isinstance(axes[0, 1].yaxis.get_major_formatter(), ScalarFormatter)
    path = save_figure(fig, tmp_path / "pinned.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    for ax in axes.flat:
        assert isinstance(ax.xaxis.get_major_locator(), AutoLocator)
        assert isinstance(ax.yaxis.get_major_locator(), AutoLocator)
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    assert axes[0, 1].yaxis.get_offset_text().get_text()  # the offset is still printed
