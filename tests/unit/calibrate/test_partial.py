"""Model more than you calibrate: a 1-DOF calibration inside a 3-DOF model; per-MTU initial
values from CSV/JSON files (and the reader hook); bounds checked only where calibrated."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.calibrate import initial_values as iv
from pipeline.calibrate.gradient import GradientOptions
from pipeline.calibrate.run import calibrate, make_objective
from pipeline.calibrate.spec import build_spec
from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION, make_problem
from pipeline.errors import ConfigError


@pytest.fixture(scope="module")
def problem():
    cfg = copy.deepcopy(SYNTHETIC_CALIBRATION)
    cfg["parameters"] = ["optimal_fiber_length", "tendon_slack_length", "strength"]
    return make_problem(n_mtus=6, n_dofs=3, n_calibration=2, n_validation=1, n_samples=150,
                        tendon="stiff", seed=3, calibration=cfg)


def test_one_dof_calibration_inside_a_three_dof_model(problem) -> None:
    batch = problem.calibration
    arms = batch.moment_arm_m.abs().amax(dim=(0, 3)).numpy()  # (muscle, dof)
    crossing = {m for i, m in enumerate(batch.mtu_names) if arms[i, 0] > 0}
    others = [m for m in batch.mtu_names if m not in crossing]
    assert crossing and others, "the reference problem should have MTUs off dof0"
    # Start the calibrated MTUs 10 % off the truth; the others sit at chosen values, off truth.
    muscles = problem.spec.muscles
    start = {m: {"optimal_fiber_length_m": float(muscles.optimal_fiber_length_m[i])
                 * (1.1 if m in crossing else 0.93),
                 "tendon_slack_length_m": float(muscles.tendon_slack_length_m[i]),
                 "strength": 1.2 if m not in crossing else 1.0}
             for i, m in enumerate(batch.mtu_names)}
    spec = build_spec(muscles, problem.config, calibrated_mtus=crossing, initial_values=start)
    assert {e for _, e in spec.labels} == crossing
    fit = batch.select_dofs(["dof0"])
    # The untracked DOFs' ID moments do not enter the objective.
    noisy = dataclasses.replace(batch, id_moment_nm=batch.id_moment_nm
                                + torch.tensor([0.0, 50.0, -80.0])[None, :, None])
    assert make_objective(spec, noisy.select_dofs(["dof0"]), problem.config)(
        torch.as_tensor(spec.initial)).item() == pytest.approx(
        make_objective(spec, fit, problem.config)(torch.as_tensor(spec.initial)).item())
    opts = GradientOptions.from_config({"max_iterations": 80, "patience": 20,
                                        "polish_iterations": 60}, progress=False)
    out = calibrate(spec, fit, problem.config, gradient_options=opts, analyse=False,
                    progress=False)
    values = spec.per_mtu(out.p)
    initial = spec.per_mtu(spec.initial)
    for kind in ("optimal_fiber_length", "tendon_slack_length", "strength"):
        for i, m in enumerate(batch.mtu_names):
            if m not in crossing:
                assert values[kind][i] == initial[kind][i], (kind, m)
    fixed = [batch.mtu_names.index(m) for m in others]
    np.testing.assert_allclose(values["strength"][fixed], 1.2)
    # The calibrated MTUs move towards the truth and the tracked moment is fitted.
    moved = [batch.mtu_names.index(m) for m in crossing]
    before = np.abs(initial["optimal_fiber_length"][moved] / muscles.optimal_fiber_length_m[moved]
                    - 1).mean()
    after = np.abs(values["optimal_fiber_length"][moved] / muscles.optimal_fiber_length_m[moved]
                   - 1).mean()
    assert after < before
    # Every MTU still produces force and every DOF a moment (execution on the full batch).
    with torch.no_grad():
        output = out.objective.simulate(torch.as_tensor(out.p), batch)
    assert output.moments_nm.shape[1] == 3
    assert bool((output.force_n[:, fixed].abs().amax(dim=-1) > 0).all())


def test_uncalibrated_mtu_leaves_a_shared_group(problem) -> None:
    cfg = {**problem.config, "groups": {"pair": ["mtu00", "mtu01"]},
           "activation_sharing": "global", "parameters": ["strength", "c1"]}
    spec = build_spec(problem.spec.muscles, cfg, calibrated_mtus={"mtu00"})
    strength = spec.blocks["strength"]
    assert strength.entry_names[strength.index[0]] == "pair"
    assert strength.entry_names[strength.index[1]] == "mtu01"
    assert spec.labels == [("c1", "global"), ("strength", "pair")]
    c1 = spec.per_mtu(np.array([-0.3, 2.0]))["c1"]
    assert c1[0] == pytest.approx(-0.3) and c1[1] == pytest.approx(-0.5)


def test_bounds_checked_only_for_calibrated_parameters(problem) -> None:
    cfg = copy.deepcopy(problem.config)
    cfg["bounds"]["damping"] = {"lower": 0.5, "upper": 0.1}  # damping is not calibrated
    build_spec(problem.spec.muscles, cfg)
    cfg["parameters"] = [*cfg["parameters"], "damping"]
    with pytest.raises(ConfigError, match="damping"):
        build_spec(problem.spec.muscles, cfg)
    # An uncalibrated MTU's initial value outside the bounds is fine; a calibrated one is not.
    cfg = copy.deepcopy(problem.config)
    outside = {"mtu05": {"strength": 9.0}}
    build_spec(problem.spec.muscles, cfg, calibrated_mtus={"mtu00"}, initial_values=outside)
    with pytest.raises(ConfigError, match="strength of 'mtu05' = 9"):
        build_spec(problem.spec.muscles, cfg, initial_values=outside)


def test_initial_values_from_csv_json_and_a_registered_reader(tmp_path: Path, problem) -> None:
    csv_path = tmp_path / "start.csv"
    csv_path.write_text("# per-muscle start\nmtu,optimal_fiber_length_m,strength,c1\n"
                        "mtu00,0.11,1.3,-0.4\nmtu01,,0.9,\nghost,0.2,1,-0.5\n")
    values = iv.read_initial_values(csv_path)
    assert values["mtu00"] == {"optimal_fiber_length_m": 0.11, "strength": 1.3, "c1": -0.4}
    assert values["mtu01"] == {"strength": 0.9}
    document = {"mtus": {"mtu00": {"optimal_fiber_length_m": {"value": 0.12},
                                   "max_isometric_force_n": {"value": 900.0, "generic_n": 600.0},
                                   "strength_coefficient": {"value": 1.5}}}}
    json_path = tmp_path / "parameters.json"
    json_path.write_text(json.dumps(document))
    assert iv.read_initial_values(json_path)["mtu00"] == {
        "optimal_fiber_length_m": 0.12, "max_isometric_force_n": 600.0, "strength": 1.5}
    picked = iv.select(values, problem.spec.mtu_names, source=csv_path)
    assert "ghost" not in picked
    spec = build_spec(problem.spec.muscles, problem.config, initial_values=picked)
    assert spec.per_mtu(spec.initial)["optimal_fiber_length"][0] == pytest.approx(0.11)
    assert spec.blocks["strength"].initial[:2] == pytest.approx([1.3, 0.9])
    (tmp_path / "bad.csv").write_text("mtu,fiber\nmtu00,1\n")
    with pytest.raises(ConfigError, match="unknown key 'fiber'"):
        iv.read_initial_values(tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match="no reader for .abc"):
        iv.read_initial_values(tmp_path / "subject.abc")
    iv.register_reader(".txt", lambda path: {"mtu02": {"tendon_slack_length_m": 0.3}})
    try:
        (tmp_path / "s.txt").write_text("")
        assert iv.read_initial_values(tmp_path / "s.txt") == {
            "mtu02": {"tendon_slack_length_m": 0.3}}
    finally:
        iv._READERS.pop(".txt")
