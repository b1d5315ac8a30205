"""AdamW + L-BFGS polish (pipeline.calibrate.gradient) against analytic optima."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.calibrate.gradient import GradientOptions, calibrate_gradient, history_tsv
from pipeline.calibrate.synthetic import make_problem


@pytest.fixture(scope="module")
def spec():
    return make_problem(n_mtus=3, n_dofs=2, n_calibration=1, n_validation=1, n_samples=30,
                        tendon="stiff", seed=2).spec


def _quadratic(spec, target: np.ndarray):
    """Ill-conditioned quadratic in physical units with its minimum at ``target``."""
    scale = torch.as_tensor(np.geomspace(1.0, 1e3, spec.n_free) / (spec.upper - spec.lower) ** 2)
    t = torch.as_tensor(target)

    def terms(p: torch.Tensor):
        tracking = (scale * (p - t) ** 2).sum()
        return tracking, tracking, torch.zeros((), dtype=torch.float64)

    return terms


def test_polish_reaches_the_analytic_minimum_that_adamw_only_approaches(spec) -> None:
    target = spec.lower + (spec.upper - spec.lower) * np.linspace(0.3, 0.7, spec.n_free)
    terms = _quadratic(spec, target)
    adam_only = GradientOptions(max_iterations=60, polish_iterations=0, progress=False,
                                log_every=0)
    polished = GradientOptions(max_iterations=60, polish_iterations=200, progress=False,
                               log_every=0)
    a = calibrate_gradient(terms, spec, options=adam_only)
    b = calibrate_gradient(terms, spec, options=polished)
    rel = np.abs(b.p - target) / (spec.upper - spec.lower)
    assert rel.max() < 1e-6, rel.max()
    assert b.loss < 1e-6 * a.loss
    # One history row per L-BFGS evaluation after the AdamW rows, numbered on, without a rate.
    polish_rows = b.history[len(a.history):]
    assert polish_rows and all(math.isnan(r["lr"]) for r in polish_rows)
    assert b.polish_evaluations == len(polish_rows) and a.polish_evaluations == 0
    iterations = [r["iteration"] for r in b.history]
    assert iterations == sorted(iterations) and len(set(iterations)) == len(iterations)
    assert min(r["loss"] for r in b.history) == pytest.approx(b.loss)
    assert history_tsv(b.history).count("\n") == len(b.history) + 1


def test_polish_keeps_its_best_iterate_when_the_model_fails(spec) -> None:
    target = spec.lower + 0.6 * (spec.upper - spec.lower)
    quadratic = _quadratic(spec, target)
    calls = {"n": 0}

    def failing(p: torch.Tensor):
        calls["n"] += 1
        if calls["n"] > 40:  # AdamW's 30 iterations, then 10 polish evaluations succeed
            raise ZeroDivisionError("no static equilibrium")
        return quadratic(p)

    options = GradientOptions(max_iterations=30, patience=1000, polish_iterations=200,
                              progress=False, log_every=0)
    result = calibrate_gradient(failing, spec, options=options)
    best_seen = min(r["loss"] for r in result.history)
    assert math.isfinite(result.loss) and result.loss == pytest.approx(best_seen)
    assert float(quadratic(torch.as_tensor(result.p))[0]) == pytest.approx(result.loss)


def test_options_read_the_polish_setting_and_overrides_win() -> None:
    cfg = {"learning_rate": 0.2, "polish_iterations": 7, "unrelated": 1}
    assert GradientOptions.from_config(cfg).polish_iterations == 7
    assert GradientOptions.from_config(cfg, polish_iterations=0).polish_iterations == 0
    assert GradientOptions.from_config(cfg).learning_rate == 0.2
