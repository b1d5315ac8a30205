"""The generated study follows the study folder contract and truth.json carries the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.demo import register  # noqa: F401  (the subcommand module imports cleanly)
from pipeline.study import load_study
from pipeline.synth.parameters import PARAMETER_KEYS
from pipeline.synth.subject import FEASIBLE_RESIDUAL

pytestmark = pytest.mark.slow


def test_small_study_validates(small_study: Path) -> None:
    study = load_study(small_study)
    assert {row["subject"] for row in study.subjects} == {"arm01", "leg01"}
    for subject in ("arm01", "leg01"):
        roles = [row["role"] for row in study.trials_of(subject, kind="dynamic")]
        assert roles.count("calibration") == 2 and roles.count("validation") == 1
        kinds = {row["kind"] for row in study.trials if row["subject"] == subject}
        assert kinds == {"static", "mvc", "dynamic"}
    arm = study.config["models"]["demo-arm-dumbbell"]
    assert arm["dofs"] == ["shoulder_elev", "shoulder_rot", "elbow_flex"]
    assert arm["force_plates"] is False
    leg = study.config["models"]["demo-leg"]
    assert leg["dofs"] == ["hip_flexion_r", "knee_angle_r", "ankle_angle_r"]
    assert leg["force_plates"] is True
    assert len(leg["excitations"]) >= 14 and len(arm["excitations"]) >= 14


def test_truth_json_contract(small_study: Path, small_truth: dict) -> None:
    study = load_study(small_study)
    bounds = study.config["calibration"]["bounds"]
    for name, entry in small_truth["subjects"].items():
        setup = study.config["models"][study.subject(name)["model"]]
        assert set(entry["parameters"]) == set(setup["excitations"])
        for mtu, values in entry["parameters"].items():
            assert set(PARAMETER_KEYS) <= set(values)
            initial = entry["initial_parameters"][mtu]
            for key in ("optimal_fiber_length_m", "tendon_slack_length_m"):
                ratio = values[key] / initial[key]
                assert 0.85 < ratio < 1.15 and ratio != 1.0
            strength = values["max_isometric_force_n"] / initial["max_isometric_force_n"]
            assert 0.7 <= strength <= 1.4
            for key, bound in (("c1", "c1"), ("c2", "c2"), ("shape_factor", "shape_factor")):
                assert bounds[bound]["lower"] < values[key] < bounds[bound]["upper"]
        dynamic = {row["trial"] for row in study.trials_of(name, kind="dynamic")}
        assert set(entry["trials"]) == dynamic
        for record in entry["trials"].values():
            n = len(record["time_s"])
            assert set(record["moments_nm"]) == set(setup["dofs"])
            assert set(record["excitations"]) == set(setup["excitations"])
            assert all(len(v) == n for v in record["coordinates"].values())
            assert set(record["model_id_moments_nm"]) == set(setup["dofs"])
            residual = np.array(list(record["residual_actuators_nm"].values()))
            peaks = np.abs(np.array(list(record["id_moments_nm"].values()))).max(axis=1)
            # the generator's own acceptance bound for a draw of true muscles (the segments'
            # truth changes the moments the muscles must make: seed 1's arm leaves 1.2 % on
            # shoulder_rot, typical draws 0.3-1.5 %)
            assert np.all(np.sqrt((residual**2).mean(axis=1)) < FEASIBLE_RESIDUAL * peaks)


def test_demo_study_refuses_to_overwrite(tmp_path: Path) -> None:
    from pipeline.__main__ import main

    (tmp_path / "config.yaml").write_text("{}\n")
    assert main(["demo-study", str(tmp_path), "--small"]) == 2


def test_truth_segments_are_perturbed_and_physical(small_study: Path, small_truth: dict) -> None:
    """truth.json ``bodies``: every moving segment perturbed from ``generic_bodies`` within the
    draw's range and physically valid; the known payload and the bodies welded to ground kept;
    ``true_mass_kg`` their total; subjects.tsv keeps the generic total (see study.py)."""
    from pipeline.synth.inertia import BodyInertia, physically_valid

    study = load_study(small_study)
    for name, entry in small_truth["subjects"].items():
        bodies, generic = entry["bodies"], entry["generic_bodies"]
        assert set(bodies) == set(generic)
        kept = set(entry["known_bodies"]) | ({"thorax"} if name == "arm01" else set())
        assert entry["known_bodies"] == (["dumbbell"] if name == "arm01" else [])
        for body, true in bodies.items():
            base = generic[body]
            assert physically_valid(BodyInertia(true["mass_kg"], tuple(true["mass_center_m"]),
                                                tuple(true["inertia_kg_m2"]))), (name, body)
            if body in kept:
                assert true == base, (name, body)
                continue
            assert 0.7 <= true["mass_kg"] / base["mass_kg"] <= 1.3 and true != base
            assert true["mass_kg"] != base["mass_kg"]
            assert true["mass_center_m"] != base["mass_center_m"]
            assert any(abs(v) > 0 for v in true["inertia_kg_m2"][3:])  # turned axes
        total = sum(v["mass_kg"] for v in bodies.values())
        assert entry["true_mass_kg"] == pytest.approx(total, rel=1e-9)
        generic_total = sum(v["mass_kg"] for v in generic.values())
        assert float(study.subject(name)["mass_kg"]) == pytest.approx(generic_total, abs=1e-3)
