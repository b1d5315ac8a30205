"""Identifiability: Gauss-Newton covariance against a linear model, confounded parameters."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
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
    noise = np.random.default_rng(0).normal(scale=0.05, size=ref.moments_nm.shape)
    batch = batch_from_arrays(excitation=dup(ref.excitation), mtu_length_m=dup(ref.mtu_length_m),
                              moment_arm_m=dup(ref.moment_arm_m),
                              id_moment_nm=ref.moments_nm.numpy() + noise, dt_s=ref.dt_s,
                              mtu_names=names)
    objective = make_objective(spec, batch, {**cfg, "tendon": "stiff"})
    # The data are explained by any split of a's strength between a and a_copy summing to 1.
    p = np.array([0.6, 1.0, 1.0, 0.4])
    result = analyse_identifiability(objective, p, cfg)
    assert ("a.strength", "a_copy.strength") in {(x, y) for x, y, _ in result.correlated_pairs}
    assert {"a.strength", "a_copy.strength"} <= set(result.flagged)
    assert "b.strength" not in result.flagged
    assert result.rank == 3
    doc = result.to_json()
    assert doc["correlated_pairs"][0]["correlation"] < -0.99


def test_elastic_model_gets_the_exact_jacobian_equal_to_finite_differences() -> None:
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
    assert result.jacobian_method == "exact_forward_mode"
    assert np.all(np.isfinite(result.standard_errors)) and np.all(result.standard_errors > 0)
    # The same analysis on central finite differences of the tracking residuals agrees.
    with torch.no_grad():
        columns = []
        for k in range(p.size):
            h = 1e-6 * abs(p[k])
            up, down = p.copy(), p.copy()
            up[k] += h
            down[k] -= h
            columns.append((objective.residuals(torch.as_tensor(up))
                            - objective.residuals(torch.as_tensor(down))).numpy() / (2 * h))
    fd = analyse_identifiability(objective, p, cfg, jacobian=np.stack(columns, axis=1))
    np.testing.assert_allclose(result.standard_errors, fd.standard_errors, rtol=1e-5)


def _ar1(rng: np.random.Generator, n: int, rho: float, scale: float) -> np.ndarray:
    from scipy import signal

    white = rng.normal(scale=scale * np.sqrt(1.0 - rho**2), size=n + 500)
    return signal.lfilter([1.0], [1.0, -rho], white)[500:]


def test_autocorrelation_time_of_white_and_ar1_noise(rng: np.random.Generator) -> None:
    series = np.repeat(np.arange(4), 3000)
    white = rng.normal(size=series.size)
    assert ident.autocorrelation_time(white, series) < 1.3
    rho = 0.8
    ar1 = np.concatenate([_ar1(rng, 3000, rho, 1.0) for _ in range(4)])
    expected = (1.0 + rho) / (1.0 - rho)  # 9 samples
    assert ident.autocorrelation_time(ar1, series) == pytest.approx(expected, rel=0.2)


def test_standard_errors_hold_under_autocorrelated_residuals(rng: np.random.Generator) -> None:
    """Monte Carlo: with AR(1) residuals (rho 0.9, like envelope errors at 100 Hz), the reported SE
    matches the spread of the estimates when the series are given, and is far too small
    without."""
    n, n_series = 400, 3
    t = np.tile(np.linspace(0.0, 1.0, n), n_series)
    a = torch.as_tensor(np.column_stack([np.ones_like(t), t, np.sin(2 * np.pi * t)]))
    series = np.repeat(np.arange(n_series), n)
    truth = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)
    estimates, with_series, without = [], [], []
    for _ in range(150):
        noise = np.concatenate([_ar1(rng, n, 0.9, 0.1) for _ in range(n_series)])
        b = a @ truth + torch.as_tensor(noise)
        p_hat = torch.linalg.lstsq(a, b).solution
        estimates.append(p_hat.numpy())
        with_series.append(ident.analyse(lambda p, b=b: a @ p - b, p_hat, labels=["c", "s", "w"],
                                         series=series).standard_errors)
        without.append(ident.analyse(lambda p, b=b: a @ p - b, p_hat,
                                     labels=["c", "s", "w"]).standard_errors)
    spread = np.std(estimates, axis=0)
    ratio = np.mean(with_series, axis=0) / spread
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio
    assert np.all(np.mean(without, axis=0) / spread < 0.5)


def test_residual_series_align_with_the_residuals() -> None:
    ref = make_reference_problem(n_mtus=2, n_dofs=2, n_trials=2, n_samples=50, tendon="stiff",
                                 seed=1)
    spec_cfg = copy.deepcopy(SYNTHETIC_CALIBRATION)
    params = {k: v.numpy() for k, v in ref.params.as_dict().items()}
    muscles = MuscleProperties(("m0", "m1"), params["optimal_fiber_length_m"],
                               params["tendon_slack_length_m"], params["max_isometric_force_n"],
                               params["pennation_at_optimal_rad"])
    batch = batch_from_arrays(excitation=ref.excitation, mtu_length_m=ref.mtu_length_m,
                              moment_arm_m=ref.moment_arm_m, id_moment_nm=ref.moments_nm,
                              dt_s=ref.dt_s, mtu_names=("m0", "m1"), dof_names=("d0", "d1"))
    mask = batch.mask.clone()
    mask[1, 35:] = False  # the second trial is padded after 35 samples
    batch = dataclasses.replace(batch, mask=mask)
    spec = build_spec(muscles, spec_cfg)
    objective = make_objective(spec, batch, spec_cfg)
    labels = objective.residual_series()
    residuals = objective.residuals(torch.as_tensor(spec.initial))
    assert labels.shape == residuals.shape
    counts = np.bincount(labels)
    np.testing.assert_array_equal(counts, [50, 50, 35, 35])
    assert np.all(np.diff(labels) >= 0)  # each series is one consecutive block
