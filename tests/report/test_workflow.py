"""The real workflow on the small demo study: figures, report, provenance, identical reruns and
dry-run selectivity. Skips until the calibration rules and the demo generator exist."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_rerun import planned_rules

from pipeline.plots.load import all_trial_metrics, read_json
from pipeline.study import load_study

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile")]
UPSTREAM_RULES = {"markers", "forceplates", "emg_envelope", "emg_maxima", "emg_normalise",
                  "events", "scale", "ik", "inverse_dynamics", "muscle_analysis",
                  "collect_nms_inputs"}
DOWNSTREAM_OF_CALIBRATION = {"calibrate", "execute", "figures", "report", "all"}
MAX_ITERATIONS = 150  # keeps the test short; recovery is tested elsewhere

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(study: Path, *args: str, timeout: int = 3600) -> str:
    result = subprocess.run([*SNAKEMAKE, "--cores", "2", "--directory", str(study), *args],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                            env=_env(), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    return output


def _set_config(study: Path, dotted: str, value: object) -> None:
    path = study / "config.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    node = config
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _values(study: Path) -> dict[str, float]:
    out = {}
    for path in sorted(study.glob("results/*/calibration/*/parameters.json")):
        for mtu, entry in json.loads(path.read_text())["mtus"].items():
            for name, item in entry.items():
                if isinstance(item, dict) and "value" in item:
                    out[f"{path.parent.relative_to(study)}/{mtu}/{name}"] = item["value"]
    return out


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [p for p in ("rules/calibrate.smk", "pipeline/synth/__init__.py")
               if not (PROJECT_ROOT / p).exists()]
    if missing:
        pytest.skip(f"not yet in the project: {', '.join(missing)}")
    study = tmp_path_factory.mktemp("workflow") / "demo"
    subprocess.run([sys.executable, "-m", "pipeline", "demo-study", str(study), "--small"],
                   cwd=PROJECT_ROOT, check=True, timeout=900, env=_env(), capture_output=True)
    _set_config(study, "calibration.optimiser.max_iterations", MAX_ITERATIONS)
    _snakemake(study)
    return study


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


def test_parameters_carry_provenance(demo_study: Path) -> None:
    for path in demo_study.glob("results/*/calibration/*/parameters.json"):
        record = json.loads(path.read_text())["provenance"]
        for key in ("package_version", "git_commit", "config_sha256", "seed", "inputs"):
            assert key in record, f"{path}: provenance lacks {key}"


def test_rerun_gives_identical_parameters(demo_study: Path, tmp_path: Path) -> None:
    before = _values(demo_study)
    saved = tmp_path / "before"
    shutil.copytree(demo_study / "results", saved)
    _snakemake(demo_study, "--forcerun", "calibrate")
    assert _values(demo_study) == before


def test_changed_optimiser_setting_reruns_only_calibration_onwards(demo_study: Path) -> None:
    assert planned_rules(_snakemake(demo_study, "-n")) == set()
    _set_config(demo_study, "calibration.optimiser.max_iterations", MAX_ITERATIONS + 1)
    try:
        planned = planned_rules(_snakemake(demo_study, "-n"))
    finally:
        _set_config(demo_study, "calibration.optimiser.max_iterations", MAX_ITERATIONS)
    assert "calibrate" in planned
    assert planned <= DOWNSTREAM_OF_CALIBRATION, planned
    assert not planned & UPSTREAM_RULES
