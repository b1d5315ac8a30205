"""The real workflow on the small demo study: figures, report, provenance and identical reruns,
on the shared run of the small demo study (tests/conftest.py). Which jobs a change reruns:
tests/workflow/test_rerun_matrix.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from workflow_helpers import run_snakemake

from pipeline.plots.load import all_trial_metrics, read_json
from pipeline.study import load_study

pytestmark = pytest.mark.slow


def _snakemake(study: Path, *args: str) -> str:
    return run_snakemake(study, *args)


def _values(study: Path) -> dict[str, float]:
    out = {}
    for path in sorted(study.glob("results/*/calibration/*/parameters.json")):
        for mtu, entry in json.loads(path.read_text())["mtus"].items():
            for name, item in entry.items():
                if isinstance(item, dict) and "value" in item:
                    out[f"{path.parent.relative_to(study)}/{mtu}/{name}"] = item["value"]
    return out


@pytest.fixture
def demo_study(small_demo_run: Path) -> Path:
    return small_demo_run


def _subjects(study: Path) -> list[str]:
    return load_study(study, check_files=False).subject_names


def test_every_subject_has_figures_made_from_its_metrics(demo_study: Path) -> None:
    for subject in _subjects(demo_study):
        folder = demo_study / "results" / subject / "figures"
        manifest = json.loads((folder / "manifest.json").read_text())
        for entry in manifest["figures"]:
            assert (folder / entry["file"]).stat().st_size > 10_000, entry["file"]
        for method in manifest["methods"]:
            metrics = all_trial_metrics(read_json(
                demo_study / f"results/{subject}/calibration/{method}/metrics.json"))
            notes = next(e for e in manifest["figures"]
                         if e["file"].startswith(f"moments_{method}"))["annotations"]
            assert metrics
            for trial, dofs in metrics.items():
                for dof, values in dofs.items():
                    assert notes[f"{trial}/{dof}/rmse_nm"] == pytest.approx(values["rmse_nm"])


def test_report_has_every_subject(demo_study: Path) -> None:
    html = (demo_study / "results/report.html").read_text()
    for subject in _subjects(demo_study):
        assert f'id="subject-{subject}"' in html


def test_every_json_output_carries_provenance(demo_study: Path) -> None:
    outputs = sorted(demo_study.glob("results/**/*.json"))
    assert any(p.name == "scale_report.json" for p in outputs)
    for path in outputs:
        record = json.loads(path.read_text())["provenance"]
        for key in ("package_version", "git_commit", "config_sha256", "seed", "inputs"):
            assert key in record, f"{path}: provenance lacks {key}"


def test_rerun_gives_identical_parameters(demo_study: Path, tmp_path: Path) -> None:
    before = _values(demo_study)
    saved = tmp_path / "before"
    shutil.copytree(demo_study / "results", saved)
    target = next(demo_study.glob("results/*/calibration/gradient/parameters.json"))
    _snakemake(demo_study, str(target.relative_to(demo_study)), "--forcerun", "calibrate")
    assert _values(demo_study) == before
    _snakemake(demo_study)  # bring execution, figures and report up to date for later tests
