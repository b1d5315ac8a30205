"""The (c1, c2) fold: the start moved off it, the mean-and-gap coordinates, and the solver reaching
an optimum on the fold (where Gauss-Newton in c1, c2 crawls)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from pipeline.calibrate.activation_pairs import PairCoordinates, activation_pairs, off_the_fold
from pipeline.calibrate.least_squares import STALL_GAIN, solve_least_squares
from pipeline.calibrate.run import make_objective
from pipeline.calibrate.synthetic import make_problem


def _spec(labels, lower, upper, initial=None):
    return SimpleNamespace(labels=labels, lower=np.asarray(lower, float),
                           upper=np.asarray(upper, float),
                           initial=None if initial is None else np.asarray(initial, float))


#: two MTUs' c1, c2 and one other parameter; c1 and c2 in CEINMS's bounds
LABELS = [("c1", "a"), ("c1", "b"), ("c2", "a"), ("c2", "b"), ("strength", "a")]
LOWER = [-0.95, -0.95, -0.95, -0.95, 0.5]
UPPER = [-0.05, -0.05, -0.05, -0.05, 1.5]


def test_pairs_are_found_by_entry_name_in_a_real_spec() -> None:
    spec = make_problem(n_mtus=3, n_dofs=1, n_samples=30, tendon="stiff", seed=0).spec
    first, second = activation_pairs(spec)
    assert [spec.labels[i] for i in first] == [("c1", m) for m in spec.mtu_names]
    assert [spec.labels[i] for i in second] == [("c2", m) for m in spec.mtu_names]


def test_the_start_is_moved_off_the_fold_keeping_each_mean() -> None:
    spec = _spec(LABELS, LOWER, UPPER)
    p = np.array([-0.5, -0.94, -0.5, -0.94, 1.0])
    out = off_the_fold(spec, p)
    assert out[0] == pytest.approx(-0.5 - 0.0495) and out[2] == pytest.approx(-0.5 + 0.0495)
    # next to a bound: moved only as far as the bound allows, still inside
    assert -0.95 < out[1] < -0.94 < out[3] < -0.93
    assert out[1] + out[3] == pytest.approx(-1.88)
    assert out[4] == 1.0
    apart = np.array([-0.7, -0.5, -0.3, -0.5 + 5e-4, 1.0])  # pair a apart already, b not
    moved = off_the_fold(spec, apart)
    np.testing.assert_array_equal(moved[[0, 2]], apart[[0, 2]])
    assert moved[3] - moved[1] == pytest.approx(0.099, abs=2e-3)
    no_pairs = _spec(LABELS[:2] + LABELS[4:], LOWER[:2] + LOWER[4:], UPPER[:2] + UPPER[4:])
    q = np.array([-0.5, -0.5, 1.0])
    np.testing.assert_array_equal(off_the_fold(no_pairs, q), q)


def test_mean_and_gap_round_trip_and_bounds() -> None:
    coords = PairCoordinates.of(_spec(LABELS, LOWER, UPPER))
    assert coords.n_pairs == 2
    p = np.array([-0.8, -0.3, -0.2, -0.3 + 0.05, 0.9])
    y = coords.to_solver(p)
    np.testing.assert_allclose(y[[0, 2]], [-0.5, 0.36])
    np.testing.assert_allclose(coords.to_model(y), p, atol=1e-15)
    swapped = p[[2, 3, 0, 1, 4]]  # c1 > c2: the same model, returned in order
    np.testing.assert_allclose(coords.to_model(coords.to_solver(swapped)), p, atol=1e-15)
    lower, upper = coords.bounds(np.array(LOWER), np.array(UPPER))
    np.testing.assert_allclose(upper[[2, 3]], 0.81)
    assert 0.0 < lower[2] < 1e-8
    # a pair mapped past a bound is mirrored back inside
    beyond = coords.to_model(np.array([-0.1, -0.5, 0.04, 0.0, 1.0]))
    assert beyond[2] == pytest.approx(-0.05 - 0.05) and beyond[0] == pytest.approx(-0.2)
    # different bounds for c1 and c2: the pair stays in physical coordinates
    unequal = PairCoordinates.of(_spec(LABELS, LOWER, [-0.05, -0.05, -0.1, -0.05, 1.5]))
    assert unequal.n_pairs == 1 and unequal.first.tolist() == [1]


def test_each_pair_keeps_its_order_when_oriented() -> None:
    coords = PairCoordinates.of(_spec(LABELS, LOWER, UPPER))
    p = np.array([-0.3, -0.8, -0.7, -0.6, 1.0])  # pair a: c1 > c2, pair b: c1 < c2
    oriented = coords.oriented_as(p)
    np.testing.assert_array_equal(oriented.sign, [-1.0, 1.0])
    np.testing.assert_allclose(oriented.to_model(oriented.to_solver(p)), p, atol=1e-15)
    assert coords.to_model(coords.to_solver(p))[0] == pytest.approx(-0.7)  # unoriented: swapped


@pytest.mark.parametrize("sign", [None, np.array([-1.0, 1.0])])
@pytest.mark.parametrize("y", [np.array([-0.45, -0.6, 0.09, 0.02, 1.1]),
                               np.array([-0.12, -0.6, 0.04, 1e-4, 0.7])])  # pair a mirrored
def test_jacobian_in_mean_and_gap_equals_finite_differences(y: np.ndarray, sign) -> None:
    plain = PairCoordinates.of(_spec(LABELS, LOWER, UPPER))
    coords = PairCoordinates(plain.first, plain.second, plain.low, plain.high, sign)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 5))

    def residuals(p: np.ndarray) -> np.ndarray:
        return np.sin(a @ p) + (a @ p) ** 2

    def jacobian_p(p: np.ndarray) -> np.ndarray:
        z = a @ p
        return (np.cos(z) + 2 * z)[:, None] * a

    analytic = coords.jacobian(y, jacobian_p(coords.to_model(y)))
    numeric = np.empty_like(analytic)
    for k in range(y.size):
        h = 1e-7 * max(1.0, abs(y[k])) if k not in (2, 3) else 1e-6 * y[k]
        e = np.zeros_like(y)
        e[k] = h
        numeric[:, k] = (residuals(coords.to_model(y + e))
                         - residuals(coords.to_model(y - e))) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


class _FilterCoefficients:
    """Residuals of a model that sees c1, c2 only through beta1 = c1 + c2 and beta2 = c1 c2 (as
    the activation filter does), fitted to targets beta1 = -1, beta2 = 0.3: no real pair has
    them (beta1^2 < 4 beta2), so the best pair lies on the fold c1 = c2."""

    n_tracking_residuals = 2

    def __init__(self) -> None:
        self.spec = _spec([("c1", "m"), ("c2", "m")], [-0.95, -0.95], [-0.05, -0.05])

    def _r(self, p: np.ndarray) -> np.ndarray:
        return np.array([p[0] + p[1] + 1.0, 3.0 * (p[0] * p[1] - 0.3)])

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self._r(p.numpy()))

    def residuals_and_jacobian(self, p: torch.Tensor):
        c1, c2 = p.numpy()
        return torch.as_tensor(self._r(p.numpy())), np.array([[1.0, 1.0], [3.0 * c2, 3.0 * c1]])


@pytest.mark.parametrize("stall_gain", [STALL_GAIN, np.inf])  # the default; switch at once
def test_an_optimum_on_the_fold_is_reached(stall_gain: float) -> None:
    problem = _FilterCoefficients()
    on_fold = minimize_scalar(lambda m: (2 * m + 1.0) ** 2 + 9.0 * (m * m - 0.3) ** 2,
                              bounds=(-0.95, -0.05), method="bounded",
                              options={"xatol": 1e-12})
    p0 = off_the_fold(problem.spec, np.array([-0.5, -0.5]))
    result = solve_least_squares(problem, p0, max_evaluations=60, tolerance=1e-12,
                                 stall_gain=stall_gain)
    assert result.loss == pytest.approx(float(on_fold.fun), rel=1e-7)
    np.testing.assert_allclose(result.p, on_fold.x, atol=2e-4)
    assert result.stopped != "max_evaluations"


def test_a_stalled_calibration_goes_on_in_mean_and_gap() -> None:
    """A synthetic calibration whose physical-coordinate solve creeps (seed 6): the staged
    solver ends at the same optimum in fewer evaluations, and hands the identifiability
    analysis the Jacobian w.r.t. the physical parameters at its end point."""
    problem = make_problem(n_mtus=6, n_dofs=2, n_samples=200, tendon="stiff", seed=6,
                           model_error=0.1)
    objective = make_objective(problem.spec, problem.calibration, problem.config)
    p0 = off_the_fold(problem.spec, problem.spec.initial)
    staged = solve_least_squares(objective, p0, max_evaluations=300)
    plain = solve_least_squares(objective, p0, max_evaluations=300, stall_gain=-np.inf)
    assert staged.loss == pytest.approx(plain.loss, rel=1e-6)
    assert staged.evaluations < plain.evaluations
    _, jacobian = objective.residuals_and_jacobian(torch.as_tensor(staged.p))
    np.testing.assert_allclose(staged.tracking_jacobian,
                               jacobian[:objective.n_tracking_residuals], rtol=1e-12, atol=0)
