"""The bounded least-squares solver (QR-reduced residuals) against scipy on the full residuals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares, lsq_linear

from pipeline.calibrate.least_squares import qr_triangle, solve_least_squares
from pipeline.errors import CalibrationError


class _Problem:
    """Residuals ``r(p)`` and their Jacobian from plain numpy functions, inside a box."""

    def __init__(self, residuals, jacobian, lower, upper, n_tracking=None, fail=None) -> None:
        self._residuals, self._jacobian, self._fail = residuals, jacobian, fail
        self.spec = SimpleNamespace(lower=np.asarray(lower, float), upper=np.asarray(upper, float))
        self.n_tracking_residuals = n_tracking
        self.calls = 0

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self._residuals(p.numpy()))

    def residuals_and_jacobian(self, p: torch.Tensor):
        self.calls += 1
        if self._fail is not None and self._fail(p.numpy()):
            raise ArithmeticError("no static equilibrium")
        return torch.as_tensor(self._residuals(p.numpy())), self._jacobian(p.numpy())


def test_bounded_linear_problem_reaches_the_exact_constrained_solution() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 6)) * np.geomspace(1.0, 1e3, 6)
    b = rng.normal(size=300) * 10.0
    lower, upper = np.full(6, -0.01), np.full(6, 0.02)
    truth = lsq_linear(a, b, bounds=(lower, upper), tol=1e-14).x
    assert np.any(np.isclose(truth, lower)) or np.any(np.isclose(truth, upper))
    problem = _Problem(lambda p: a @ p - b, lambda p: a, lower, upper, n_tracking=300)
    result = solve_least_squares(problem, np.zeros(6), max_evaluations=100, tolerance=1e-14)
    np.testing.assert_allclose(result.p, truth, rtol=0, atol=1e-9)
    assert result.loss == pytest.approx(float(np.sum((a @ truth - b) ** 2)), rel=1e-12)
    np.testing.assert_array_equal(result.tracking_jacobian, a)


@pytest.mark.parametrize("cheap_residuals", [False, True])
def test_nonlinear_fit_matches_scipy_on_the_full_residuals(cheap_residuals: bool) -> None:
    """Exponential decays fitted to noisy data: the same optimum and loss as scipy's trf with the
    full residual vector (the QR-reduced problem is the same problem)."""
    rng = np.random.default_rng(7)
    t = np.linspace(0.0, 4.0, 400)
    y = 2.0 * np.exp(-1.3 * t) + 0.5 * np.exp(-0.2 * t) + 0.01 * rng.normal(size=t.size)

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[0] * np.exp(-p[1] * t) + p[2] * np.exp(-p[3] * t) - y

    def jacobian(p: np.ndarray) -> np.ndarray:
        e1, e2 = np.exp(-p[1] * t), np.exp(-p[3] * t)
        return np.column_stack([e1, -p[0] * t * e1, e2, -p[2] * t * e2])

    lower, upper = np.array([0.0, 0.5, 0.0, 0.0]), np.array([5.0, 3.0, 5.0, 0.45])
    p0 = np.array([1.0, 1.0, 1.0, 0.1])
    reference = least_squares(residuals, p0, jac=jacobian, bounds=(lower, upper), method="trf",
                              x_scale=upper - lower, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    problem = _Problem(residuals, jacobian, lower, upper, n_tracking=t.size)
    problem.cheap_residuals = cheap_residuals
    result = solve_least_squares(problem, p0, max_evaluations=200, tolerance=1e-12)
    np.testing.assert_allclose(result.p, reference.x, rtol=1e-7)
    assert result.loss == pytest.approx(2.0 * reference.cost, rel=1e-10)
    assert problem.calls == result.jacobians
    if cheap_residuals:  # Jacobians at accepted points only, as scipy asks for them
        assert result.jacobians == reference.njev and result.evaluations == reference.nfev
    else:  # one residual-and-Jacobian pass per evaluation, nothing more
        assert result.evaluations == result.jacobians
    assert min(row["loss"] for row in result.history) == pytest.approx(result.loss, rel=1e-12)


def test_a_failing_trial_point_is_rejected_and_the_fit_goes_on() -> None:
    """The model fails beyond p = 1.5 (a trial point there is an infinite-like loss, never a
    step); the solver ends at the bounded optimum p = 1.5 - as close as it may get."""
    problem = _Problem(lambda p: np.array([p[0] - 3.0]), lambda p: np.array([[1.0]]),
                       [0.0], [10.0], n_tracking=1, fail=lambda p: p[0] > 1.5)
    result = solve_least_squares(problem, np.array([0.5]), max_evaluations=60)
    assert 1.4 < result.p[0] <= 1.5
    assert result.loss == pytest.approx((result.p[0] - 3.0) ** 2)


def test_a_model_that_fails_at_the_start_is_a_calibration_error() -> None:
    problem = _Problem(lambda p: p - 1.0, lambda p: np.eye(2), [0.0, 0.0], [2.0, 2.0],
                       n_tracking=2, fail=lambda p: True)
    with pytest.raises(CalibrationError, match="no static equilibrium"):
        solve_least_squares(problem, np.array([0.5, 0.5]), max_evaluations=10)


@pytest.mark.parametrize("shape", [(5000, 40), (1300, 12), (50, 8), (6, 9)])
def test_block_qr_triangle_keeps_the_gram_matrix(shape: tuple[int, int]) -> None:
    """The blocked factorisation's R'R is [J r]'[J r], also for rank-deficient J (a repeated
    column) and for fewer rows than columns."""
    rng = np.random.default_rng(shape[0])
    jacobian = rng.normal(size=shape) * np.geomspace(1e-3, 1e3, shape[1])
    jacobian[:, -1] = jacobian[:, 0]
    residuals = rng.normal(size=shape[0])
    a = np.column_stack([jacobian, residuals])
    triangle = qr_triangle(jacobian, residuals)
    assert triangle.shape == (min(shape[0], shape[1] + 1), shape[1] + 1)
    assert np.allclose(np.tril(triangle, -1), 0.0)
    gram = a.T @ a
    np.testing.assert_allclose(triangle.T @ triangle, gram, rtol=0,
                               atol=1e-13 * np.abs(gram).max())
