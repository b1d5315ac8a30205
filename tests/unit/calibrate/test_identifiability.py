"""Identifiability: Gauss-Newton covariance against a linear model, confounded parameters."""

from __future__ import annotations

import copy

import numpy as np
import torch

from pipeline.calibrate import identifiability as ident
from pipeline.calibrate.problem import batch_from_arrays
from pipeline.calibrate.run import analyse_identifiability, make_objective
from pipeline.calibrate.spec import MuscleProperties, build_spec
from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION
from pipeline.nms import make_reference_problem


def test_linear_least_squares_standard_errors(rng: np.random.Generator) -> None:
    a = torch.as_tensor(rng.normal(size=(200, 3)))
    truth = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    noise = torch.as_tensor(rng.normal(scale=0.1, size=200))
    b = a @ truth + noise
    p_hat = torch.linalg.lstsq(a, b).solution
    result = ident.analyse(lambda p: a @ p - b, p_hat, labels=["x", "y", "z"])
    res = (a @ p_hat - b).numpy()
    sigma2 = res @ res / (200 - 3)
    cov = sigma2 * np.linalg.inv((a.T @ a).numpy())
    np.testing.assert_allclose(result.standard_errors, np.sqrt(np.diag(cov)), rtol=1e-6)
    assert result.rank == 3 and not result.correlated_pairs
    assert result.jacobian_method == "jacfwd"


def test_perfectly_confounded_pair_is_flagged() -> None:
    ref = make_reference_problem(n_mtus=3, n_dofs=2, n_trials=2, n_samples=120, tendon="stiff",
                                 seed=2)

    def dup(x: torch.Tensor) -> np.ndarray:  # duplicate MTU 0 as MTU 3 (same signals)
        return torch.cat([x, x[:, :1]], dim=1).numpy()

    params = {k: v.numpy() for k, v in ref.params.as_dict().items()}
    names = ("a", "b", "c", "a_copy")
    muscles = MuscleProperties(names, *(np.append(params[k], params[k][0]) for k in (
        "optimal_fiber_length_m", "tendon_slack_length_m", "max_isometric_force_n",
        "pennation_at_optimal_rad")))
    cfg = copy.deepcopy(SYNTHETIC_CALIBRATION)
    cfg["parameters"] = ["strength"]
    spec = build_spec(muscles, cfg)
    batch = batch_from_arrays(excitation=dup(ref.excitation), mtu_length_m=dup(ref.mtu_length_m),
                              moment_arm_m=dup(ref.moment_arm_m),
                              id_moment_nm=ref.moments_nm.numpy(), dt_s=ref.dt_s,
                              mtu_names=names)
    objective = make_objective(spec, batch, {**cfg, "tendon": "stiff"})
    p = np.array([1.1, 0.9, 1.2, 0.8])
    result = analyse_identifiability(objective, p, cfg)
    assert ("a.strength", "a_copy.strength") in {(x, y) for x, y, _ in result.correlated_pairs}
    assert {"a.strength", "a_copy.strength"} <= set(result.flagged)
    assert "b.strength" not in result.flagged
    assert result.rank == 3
    doc = result.to_json()
    assert doc["correlated_pairs"][0]["correlation"] < -0.99


def test_elastic_model_falls_back_to_finite_differences() -> None:
    ref = make_reference_problem(n_mtus=2, n_dofs=1, n_trials=1, n_samples=60, tendon="elastic",
                                 seed=1)
    params = {k: v.numpy() for k, v in ref.params.as_dict().items()}
    muscles = MuscleProperties(("a", "b"), params["optimal_fiber_length_m"],
                               params["tendon_slack_length_m"], params["max_isometric_force_n"],
                               params["pennation_at_optimal_rad"])
    cfg = copy.deepcopy(SYNTHETIC_CALIBRATION)
    cfg["parameters"] = ["strength", "optimal_fiber_length"]
    spec = build_spec(muscles, cfg)
    objective = make_objective(spec, batch_from_arrays(
        excitation=ref.excitation, mtu_length_m=ref.mtu_length_m, moment_arm_m=ref.moment_arm_m,
        id_moment_nm=ref.moments_nm * 1.02, dt_s=ref.dt_s, mtu_names=("a", "b")), cfg)
    p = np.concatenate([params["optimal_fiber_length_m"], params["strength"]])
    result = analyse_identifiability(objective, p, cfg)
    assert result.jacobian_method in ("finite_differences", "jacrev")
    assert np.all(np.isfinite(result.standard_errors)) and np.all(result.standard_errors > 0)
