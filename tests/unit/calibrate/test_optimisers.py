"""AdamW and L-BFGS of pipeline.calibrate.optimisers against torch.optim and analytic minima."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from pipeline.calibrate.optimisers import AdamW, _strong_wolfe, minimize_lbfgs


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def _loss_and_gradient(fn):
    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        z = x.detach().clone().requires_grad_(True)
        loss = fn(z)
        loss.backward()
        return float(loss.detach()), z.grad
    return evaluate


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_adamw_follows_torch_optim_adamw_with_exponential_decay(weight_decay: float) -> None:
    start = torch.linspace(-1.5, 1.2, 8, dtype=torch.float64)
    ours = start.clone().requires_grad_(True)
    theirs = start.clone().requires_grad_(True)
    mine = AdamW(ours, learning_rate=0.05, lr_decay=0.98, weight_decay=weight_decay)
    reference = torch.optim.AdamW([theirs], lr=0.05, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.ExponentialLR(reference, gamma=0.98)
    for _ in range(150):
        ours.grad = None
        _rosenbrock(ours).backward()
        mine.step(ours.grad)
        reference.zero_grad()
        _rosenbrock(theirs).backward()
        reference.step()
        schedule.step()
    assert torch.allclose(ours.detach(), theirs.detach(), rtol=1e-12, atol=1e-14)
    assert mine.learning_rate == pytest.approx(reference.param_groups[0]["lr"], rel=1e-12)


def test_lbfgs_reaches_the_rosenbrock_minimum() -> None:
    x0 = torch.tensor([-1.2, 1.0] * 5, dtype=torch.float64)
    result = minimize_lbfgs(_loss_and_gradient(_rosenbrock), x0, max_evaluations=400,
                            history_size=10)
    assert torch.allclose(result.x, torch.ones(10, dtype=torch.float64), atol=1e-7), result
    assert result.loss < 1e-14
    assert result.evaluations <= 400 and result.stopped in {"gradient", "no_progress"}


def test_metric_is_a_change_of_variables_that_fixes_bad_scaling() -> None:
    """On an ill-conditioned diagonal quadratic the inverse curvature as metric needs a handful
    of evaluations; both runs end at the analytic minimum."""
    curvature = torch.logspace(0, 6, 40, dtype=torch.float64)
    target = torch.linspace(-1.0, 1.0, 40, dtype=torch.float64)

    def quadratic(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (curvature * (x - target) ** 2).sum()

    x0 = torch.zeros(40, dtype=torch.float64)
    plain = minimize_lbfgs(_loss_and_gradient(quadratic), x0, max_evaluations=2000,
                           tolerance_grad=1e-9)
    scaled = minimize_lbfgs(_loss_and_gradient(quadratic), x0, max_evaluations=2000,
                            tolerance_grad=1e-9, metric=1.0 / curvature)
    for result in (plain, scaled):
        assert torch.allclose(result.x, target, atol=1e-9), result
    assert scaled.evaluations <= 6 < plain.evaluations


def test_line_search_returns_a_strong_wolfe_step() -> None:
    """On a 1-D quartic from a step that overshoots and from one that falls short."""
    def quartic(x: torch.Tensor) -> torch.Tensor:
        return ((x - 3.0) ** 4 + 0.5 * x ** 2).sum()

    evaluate = _loss_and_gradient(quartic)
    x = torch.zeros(1, dtype=torch.float64)
    loss0, grad0 = evaluate(x)
    direction = -grad0
    slope0 = float(grad0 @ direction)
    for first_step in (1.0, 1e-4):
        found = _strong_wolfe(evaluate, x, direction, loss0, grad0, slope0, first_step,
                              max_calls=30)
        assert found.step is not None
        loss, grad = evaluate(x + found.step * direction)
        assert loss == found.loss
        assert loss <= loss0 + 1e-4 * found.step * slope0
        assert abs(float(grad @ direction)) <= 0.9 * abs(slope0)


def test_line_search_backs_off_from_a_region_where_the_loss_is_not_finite() -> None:
    def guarded(x: torch.Tensor) -> torch.Tensor:
        loss = ((x - 1.0) ** 2).sum()
        return loss if float(x.detach().max()) < 1.5 else loss * math.nan

    evaluate = _loss_and_gradient(guarded)
    result = minimize_lbfgs(evaluate, torch.tensor([-40.0], dtype=torch.float64),
                            max_evaluations=60)
    assert math.isfinite(result.loss)
    assert float(result.x) == pytest.approx(1.0, abs=1e-8)


def test_gradient_calibration_does_not_import_the_torch_compiler() -> None:
    """torch.optim imports torch._dynamo (1.5-2.5 s) on its first optimiser; ours must not."""
    code = (
        "import sys, torch\n"
        "from pipeline.calibrate.gradient import GradientOptions, calibrate_gradient\n"
        "from pipeline.calibrate.synthetic import make_problem\n"
        "spec = make_problem(n_mtus=2, n_dofs=1, n_calibration=1, n_validation=1,"
        " n_samples=20, tendon='stiff', seed=0).spec\n"
        "t = torch.as_tensor(spec.initial)\n"
        "def terms(p):\n"
        "    loss = ((p - t) ** 2).sum() + 1.0\n"
        "    return loss, loss, torch.zeros((), dtype=torch.float64)\n"
        "calibrate_gradient(terms, spec, options=GradientOptions(max_iterations=5,"
        " polish_iterations=5, progress=False))\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", out
