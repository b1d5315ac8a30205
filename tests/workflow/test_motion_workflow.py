"""The ``motion`` calibration method end to end on a copy of the small demo study.

A copy of the session's finished demo (``small_demo_run``) is switched to ``methods: [motion]``:
Snakemake plans the motion calibration and its execution (no other method), and runs them.
Checked: the outputs of the other methods' contract; the arm is anchored by its known dumbbell
and the leg by its force plates; ``parameters.json`` carries each segment's mass, centre of mass
and inertia with value, initial, bounds, SE and identifiability; ``calibrated.osim`` carries the
new inertial properties (read back by OpenSim); the muscle strengths end closer to the truth than
the scaled model and the calibration trials' moments are reproduced (no ID moment enters the fit).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_helpers import planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

SUBJECTS = ("arm01", "leg01")


@pytest.fixture(scope="module")
def motion_study(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the finished small demo (``PIPELINE_E2E_STUDY`` when set, as for
    test_demo_e2e.py) with the motion method run."""
    given = os.environ.get("PIPELINE_E2E_STUDY")
    source = Path(given) if given else request.getfixturevalue("small_demo_run")
    study = tmp_path_factory.mktemp("motion") / "study"
    shutil.copytree(source, study, symlinks=True)
    for subject in SUBJECTS:  # a given study may have run the method already
        shutil.rmtree(study / "results" / subject / "calibration" / "motion", ignore_errors=True)
    path = study / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["calibration"]["methods"] = ["motion"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    targets = [f"results/{s}/calibration/motion/{name}" for s in SUBJECTS
               for name in ("parameters.json", "metrics.json")]
    jobs = planned_jobs(run_snakemake(study, "-n", *targets))
    assert jobs.get("calibrate_motion") == 2 and jobs.get("execute") == 2, jobs
    assert "calibrate" not in jobs and "calibrate_synergy_hybrid" not in jobs, jobs
    run_snakemake(study, *targets)
    return study


def test_motion_method_outputs_anchors_and_segments(motion_study: Path) -> None:
    anchors = {}
    for subject in SUBJECTS:
        folder = motion_study / "results" / subject / "calibration" / "motion"
        doc = json.loads((folder / "parameters.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        assert doc["method"] == "motion" and metrics["method"] == "motion"
        assert metrics["n_validation_trials"] == 1 and metrics["mean_r2"] > 0.7
        assert (folder / "execution").is_dir() and (folder / "history.tsv").is_file()
        anchors[subject] = doc["motion"]["anchored_by"]
        assert 0 < doc["motion"]["identifiable_inertial_combinations"] < \
            doc["motion"]["inertial_parameters"]
        for body, entry in doc["bodies"].items():
            for key in ("mass_kg", "mass_center_m", "inertia_kg_m2"):
                assert {"value", "initial", "lower", "upper", "se", "identifiable"} <= set(
                    entry[key]), (body, key)
            flags = np.atleast_1d(entry["mass_center_m"]["identifiable"])
            ses = np.atleast_1d(entry["mass_center_m"]["se"])
            # a quantity the motion cannot determine has no standard error
            assert all(se is None for se, ok in zip(ses, flags, strict=True) if not ok)
        # muscle parameters keep the other methods' schema, with standard errors
        first = next(iter(doc["mtus"].values()))
        assert {"value", "initial", "lower", "upper", "se"} <= set(first["optimal_fiber_length_m"])
        assert doc["calibration_fit"]["mean_r2"] > 0.85, doc["calibration_fit"]
    assert anchors == {"arm01": "known bodies", "leg01": "external loads"}
    arm = json.loads((motion_study / "results/arm01/calibration/motion/parameters.json")
                     .read_text())
    assert arm["bodies"]["dumbbell"]["known"]
    assert arm["bodies"]["dumbbell"]["mass_kg"]["value"] == arm["bodies"]["dumbbell"][
        "mass_kg"]["initial"]


def test_motion_method_moves_strengths_towards_the_truth(motion_study: Path) -> None:
    truth = json.loads((motion_study / "truth.json").read_text())["subjects"]
    for subject in SUBJECTS:
        doc = json.loads((motion_study / "results" / subject / "calibration" / "motion"
                          / "parameters.json").read_text())
        fitted, initial = [], []
        for name, entry in doc["mtus"].items():
            true = truth[subject]["parameters"].get(name)
            force = entry["max_isometric_force_n"]
            if true is None or not force["calibrated"]:
                continue
            fitted.append(abs(force["value"] / true["max_isometric_force_n"] - 1))
            initial.append(abs(force["initial"] / true["max_isometric_force_n"] - 1))
        assert np.mean(fitted) < np.mean(initial), (subject, np.mean(fitted), np.mean(initial))


def test_calibrated_osim_carries_the_fitted_segments(motion_study: Path) -> None:
    import opensim

    for subject in SUBJECTS:
        folder = motion_study / "results" / subject / "calibration" / "motion"
        doc = json.loads((folder / "parameters.json").read_text())
        model = opensim.Model(str(folder / "calibrated.osim"))
        written = 0
        for name, entry in doc["bodies"].items():
            body = model.getBodySet().get(name)
            expected = (entry["mass_kg"]["value"] if entry["physically_consistent"]
                        else entry["mass_kg"]["initial"])
            assert body.getMass() == pytest.approx(expected, rel=1e-9), (subject, name)
            com = [body.getMassCenter().get(i) for i in range(3)]
            if entry["physically_consistent"] and not entry["known"]:
                assert np.allclose(com, entry["mass_center_m"]["value"], rtol=1e-9, atol=1e-12)
                written += 1
        assert written >= 3, subject


def test_output_error_refinement_in_the_workflow(motion_study: Path, tmp_path: Path) -> None:
    """``calibration.motion.simulate`` reruns only the motion calibration (and what reads it), and
    the refinement reports the joint-angle tracking of its simulation, which it does not worsen."""
    study = tmp_path / "study"
    shutil.copytree(motion_study, study, symlinks=True)
    path = study / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["calibration"].setdefault("motion", {}).update(
        {"simulate": True, "segment_s": 0.05, "simulate_max_evaluations": 4})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    target = "results/arm01/calibration/motion/parameters.json"
    jobs = planned_jobs(run_snakemake(study, "-n", target))
    assert jobs == {"calibrate_motion": 1}, jobs
    run_snakemake(study, target)
    before = json.loads((motion_study / target).read_text())
    doc = json.loads((study / target).read_text())
    assert before["motion"]["output_error"] is None
    refined = doc["motion"]["output_error"]
    assert refined["integrator"] == "rk4" and refined["segment_samples"] >= 2
    assert refined["segments"] > 10 and 1 <= refined["evaluations"] <= 4
    dofs = doc["dof_names"]
    assert set(refined["angle_rmse_deg"]) == set(dofs)
    assert refined["loss"] <= refined["loss_before"]
    # the simulation tracks the measured motion to within a few degrees over 50 ms segments
    assert max(refined["angle_rmse_deg"].values()) < 5.0
    assert refined["standard_errors"].startswith("equation error")
