"""Simulated annealing (Corana 1987 / Goffe 1994): rules, determinism, and a small calibration."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibrate.annealing import AnnealingOptions, _adjust_steps, anneal
from pipeline.calibrate.gradient import GradientOptions
from pipeline.calibrate.run import calibrate
from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION, make_problem


def test_step_adjustment_follows_corana() -> None:
    step = np.ones(3)
    ratio = np.array([0.8, 0.5, 0.2])
    out = _adjust_steps(step, ratio, span=np.full(3, 10.0))
    np.testing.assert_allclose(out, [1 + 2 * 0.2 / 0.4, 1.0, 1 / (1 + 2 * 0.2 / 0.4)])
    assert _adjust_steps(np.full(1, 5.0), np.array([1.0]), span=np.ones(1))[0] == 1.0


def test_finds_minimum_of_multimodal_function_and_is_seeded() -> None:
    def f(x: np.ndarray) -> float:  # global minimum 0 at x = 0.3; local minima elsewhere
        d = x - 0.3
        return float(np.sum(d**2) + 0.1 * np.sum(1 - np.cos(20 * np.pi * d)))

    opts = AnnealingOptions(ns=20, nt=5, rt=0.85, t0=5.0, eps=1e-8, n_eps=4,
                            max_evaluations=60_000)
    a = anneal(f, np.full(3, 0.9), options=opts, seed=3)
    b = anneal(f, np.full(3, 0.9), options=opts, seed=3)
    assert a.converged
    np.testing.assert_allclose(a.x, 0.3, atol=2e-3)
    assert a.loss == b.loss and a.evaluations == b.evaluations


def test_stops_at_evaluation_cap_and_respects_box() -> None:
    seen = []

    def f(x: np.ndarray) -> float:
        seen.append(x.copy())
        return float(np.sum((x - 2.0) ** 2))  # optimum outside the box: pushes to the bound

    res = anneal(f, np.full(2, 0.5), options=AnnealingOptions(max_evaluations=500), seed=0)
    assert res.evaluations == 500 and not res.converged
    assert np.min(seen) >= 0.0 and np.max(seen) <= 1.0
    assert np.all(res.x > 0.95)


def test_non_finite_values_are_rejected() -> None:
    def f(x: np.ndarray) -> float:
        return float("nan") if x[0] > 0.5 else float((x[0] - 0.4) ** 2)

    res = anneal(f, np.array([0.1]), options=AnnealingOptions(max_evaluations=3000, t0=0.1),
                 seed=1)
    assert res.x[0] == pytest.approx(0.4, abs=1e-2)


@pytest.mark.slow
def test_annealing_matches_gradient_optimum_on_small_problem() -> None:
    cfg = dict(SYNTHETIC_CALIBRATION, parameters=["optimal_fiber_length", "strength"])
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=2, n_validation=1, n_samples=100,
                           tendon="stiff", seed=4, noise=1.0, model_error=0.1, calibration=cfg)
    grad = calibrate(problem.spec, problem.calibration, problem.config, method="gradient",
                     gradient_options=GradientOptions(progress=False, log_every=0),
                     analyse=False, progress=False)
    ann = calibrate(problem.spec, problem.calibration, problem.config, method="annealing",
                    annealing_options=AnnealingOptions(ns=20, nt=5, rt=0.3, t0=1.0, eps=1e-9,
                                                       max_evaluations=20_000),
                    analyse=False, progress=False)
    assert grad.loss > 1e-4  # noisy data: a non-zero optimum to compare with
    assert ann.loss <= 1.01 * grad.loss, (ann.loss, grad.loss)
    np.testing.assert_allclose(ann.p, grad.p, rtol=0.02)


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_incremental_loss_equals_the_objective_along_an_annealing_walk(tendon: str) -> None:
    """Coordinate moves, reverted moves and shared (group) parameters: always the full loss."""
    from pipeline.calibrate.incremental import IncrementalLoss
    from pipeline.calibrate.run import make_objective

    cfg = dict(SYNTHETIC_CALIBRATION, groups={"g": ["mtu00", "mtu02"]})
    problem = make_problem(n_mtus=4, n_dofs=2, n_calibration=2, n_validation=1, n_samples=80,
                           tendon=tendon, seed=5, model_error=0.1, calibration=cfg)
    objective = make_objective(problem.spec, problem.calibration, problem.config)
    loss = IncrementalLoss(objective)
    rng = np.random.default_rng(0)
    p = problem.spec.initial.copy()
    span = problem.spec.upper - problem.spec.lower
    for step in range(40):
        trial = p.copy()
        k = int(rng.integers(p.size))
        trial[k] = np.clip(trial[k] + 0.2 * span[k] * rng.uniform(-1, 1),
                           problem.spec.lower[k], problem.spec.upper[k])
        assert loss(trial) == pytest.approx(objective.loss_numpy(trial), rel=1e-12, abs=1e-15)
        if step % 3 == 0:  # accept some moves, reject the others
            p = trial
    assert loss.partial_evaluations > 30 and loss.full_evaluations == 1
