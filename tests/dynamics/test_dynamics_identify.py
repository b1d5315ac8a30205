"""Equation-error identification: recovery on synthetic trials with known truth, anchors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim  # noqa: E402

from pipeline.calibrate.losses import Objective  # noqa: E402
from pipeline.calibrate.synthetic import perturbed_start, recovery_errors  # noqa: E402
from pipeline.dynamics.build import load_skeleton  # noqa: E402
from pipeline.dynamics.identify import (  # noqa: E402
    Anchor,
    EquationError,
    EquationErrorTracking,
    MotionTrials,
    identify,
    inertial_from_physical,
    physical_parameters,
)
from pipeline.dynamics.synthetic import make_motion_problem, recovery  # noqa: E402
from pipeline.errors import CalibrationError  # noqa: E402

quiet_opensim()


@pytest.fixture(scope="module")
def arm_problem(tmp_path_factory):
    """demo-arm skeleton with perturbed inertia, a synthetic 6-MTU muscle model on its 3 DOFs and
    a measured external load that closes the equation with the truth."""
    skel = load_skeleton(model_path("demo-arm", tmp_path_factory.mktemp("m")))
    problem = make_motion_problem(skel, seed=0)
    prob = problem.muscles
    objective = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s)
    return skel, prob, objective, problem.motion, problem.pi_true, problem


def test_noise_free_recovery_of_muscle_and_identifiable_inertial_parameters(arm_problem):
    skel, prob, objective, motion, pi_true, _ = arm_problem
    problem = EquationError(skel, motion, skel.coordinates)
    assert problem.anchored_by == "external loads"
    assert problem.identifiability.rank == 16  # of 40: the thorax is welded to ground
    p0 = perturbed_start(prob.spec, prob.truth, seed=1)
    ee = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s,
                   tracking=EquationErrorTracking(problem))
    solved, fit, uncertainty = identify(problem, ee, p0, max_evaluations=60)
    p = solved.p
    muscle_error_pct = np.concatenate(list(recovery_errors(prob.spec, p,
                                                           prob.truth).values()))
    assert muscle_error_pct.mean() < 0.05
    truth = problem.basis @ pi_true.reshape(-1)
    estimate = problem.basis @ fit.pi.reshape(-1)
    assert float((estimate - truth).norm() / truth.norm()) < 5e-4
    # what the data cannot see stays at the prior
    null = torch.eye(40, dtype=torch.float64) - problem.basis.T @ problem.basis
    assert torch.allclose(null @ fit.pi.reshape(-1), null @ skel.inertial.reshape(-1),
                          atol=1e-9)
    # standard errors: every muscle parameter and identifiable combination has a finite one
    # (tiny here: noise-free); a parameter the motion cannot see alone is flagged, with no SE
    assert uncertainty.rank == prob.spec.n_free + 16
    assert uncertainty.muscle_identifiable.all() and np.isfinite(uncertainty.muscle_se).all()
    assert (uncertainty.muscle_se < 1e-6 * np.abs(prob.truth)).all()
    assert np.isfinite(uncertainty.combination_se).all()
    flags = problem.identifiability.identifiable.reshape(-1, 10)
    estimated = problem.estimated.numpy().reshape(-1, 10)
    assert (uncertainty.pi_identifiable[estimated] == flags[estimated]).all()
    assert np.isnan(uncertainty.pi_se[~uncertainty.pi_identifiable]).all()
    assert np.isnan(uncertainty.body_se[~uncertainty.body_identifiable]).all()


def test_equation_error_jacobian_matches_finite_differences(arm_problem):
    skel, prob, _, motion, _, _ = arm_problem
    problem = EquationError(skel, motion, skel.coordinates)
    ee = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s,
                   tracking=EquationErrorTracking(problem))
    p = torch.tensor(perturbed_start(prob.spec, prob.truth, seed=4))
    r, jac = ee.residuals_and_jacobian(p)
    with torch.no_grad():
        assert torch.allclose(r, ee.all_residuals(p), rtol=1e-10, atol=1e-13)
        for k in range(0, prob.spec.n_free, 5):
            h = 1e-6 * max(abs(float(p[k])), 1e-2)
            up, down = p.clone(), p.clone()
            up[k] += h
            down[k] -= h
            column = (ee.all_residuals(up) - ee.all_residuals(down)) / (2 * h)
            assert np.allclose(jac[:, k], column.numpy(), rtol=1e-4,
                               atol=1e-6 * float(column.abs().max()) + 1e-12), k


def test_noisy_recovery_reports_standard_errors_that_cover_the_truth(arm_problem):
    """2 % EMG-envelope noise and 0.5 deg joint-angle noise (low-passed at 12 Hz, then
    differentiated): the errors grow, and the standard errors say by how much."""
    problem = arm_problem[-1]
    figures = recovery(problem, emg_rel_sd=0.02, angle_sd_deg=0.5, cutoff_hz=12.0)
    assert figures["muscle_mean_error_pct"] > 0.05  # worse than noise-free (< 0.05 %)
    assert figures["standard_errors_finite"]
    assert figures["muscle_unidentifiable"] <= 0.25 * figures["muscle_parameters"]
    assert figures["within_3se_fraction"] >= 0.8, figures
    assert figures["autocorrelation_time_samples"] > 1.0  # filtered noise: correlated residuals


def test_physical_parameters_round_trip_and_match_opensim(tmp_path):
    skel = load_skeleton(model_path("demo-arm", tmp_path))
    model = opensim.Model(str(model_path("demo-arm", tmp_path)))
    values = physical_parameters(skel.inertial)
    bodies = model.getBodySet()
    for b, name in enumerate(skel.bodies):
        body = bodies.get(name)
        inertia = body.getInertia()
        moments, products = inertia.getMoments(), inertia.getProducts()
        expected = [body.getMass(), *(body.getMassCenter().get(i) for i in range(3)),
                    *(moments.get(i) for i in range(3)), *(products.get(i) for i in range(3))]
        assert np.allclose(values[b].numpy(), expected, rtol=1e-12, atol=1e-14), name
    assert torch.allclose(inertial_from_physical(values), skel.inertial, rtol=1e-12,
                          atol=1e-14)
    pi = (skel.inertial[1] * (1 + 0.1 * torch.rand(10, dtype=torch.float64))).requires_grad_()
    assert torch.autograd.gradcheck(physical_parameters, (pi,))
    assert torch.autograd.gradcheck(inertial_from_physical, (physical_parameters(pi),))


def test_no_anchor_stops_with_a_clear_message(arm_problem):
    skel, _, _, motion, _, _ = arm_problem
    free = MotionTrials(motion.q, motion.qd, motion.qdd, torch.zeros_like(motion.external),
                        motion.mask)
    with pytest.raises(CalibrationError, match="force/mass scale.*Fix: give an anchor"):
        EquationError(skel, free, skel.coordinates, source="subject01")
    # the arm's body mass cannot anchor: the thorax (welded) absorbs any total
    with pytest.raises(CalibrationError, match="force/mass scale"):
        EquationError(skel, free, skel.coordinates, anchor=Anchor(body_mass_kg=70.0))


def test_a_payload_of_known_inertia_anchors_the_scale(arm_problem):
    skel, _, _, motion, _, _ = arm_problem
    free = MotionTrials(motion.q, motion.qd, motion.qdd, torch.zeros_like(motion.external),
                        motion.mask)
    problem = EquationError(skel, free, skel.coordinates, anchor=Anchor(known_bodies=("hand",)))
    assert problem.anchored_by == "known bodies"
    # the hand is welded to the forearm: the forearm's parameters still span the same space
    assert problem.identifiability.rank == 16
    assert not problem.estimated.reshape(-1, 10)[skel.bodies.index("hand")].any()
    with pytest.raises(CalibrationError, match="not in the model"):
        EquationError(skel, free, skel.coordinates, anchor=Anchor(known_bodies=("barbell",)))


def test_inertia_prior_pulls_towards_the_scaled_model_without_changing_the_data_rows(
        arm_problem):
    skel, prob, objective, motion, pi_true, _ = arm_problem
    free = EquationError(skel, motion, skel.coordinates)
    held = EquationError(skel, motion, skel.coordinates, prior_weight=1e12)
    assert held.n_data_rows == free.n_data_rows == free.n_residuals
    assert held.n_residuals == free.n_data_rows + 40  # one prior row per estimated parameter
    with torch.no_grad():
        moments = objective.simulate(torch.tensor(prob.truth)).moments_nm.transpose(1, 2)
    fit_free = free.fit_inertia(moments[free.mask])
    fit_held = held.fit_inertia(moments[held.mask])
    assert torch.allclose(free.basis @ fit_free.pi.reshape(-1), free.basis @ pi_true.reshape(-1),
                          rtol=1e-9)
    assert torch.allclose(fit_held.pi, skel.inertial, rtol=1e-6, atol=1e-9)
    # the standard errors come from the data rows alone (the prior is no measurement)
    ee = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s,
                   tracking=EquationErrorTracking(held))
    assert ee.n_tracking_residuals == held.n_residuals
    assert held.series().shape == (held.n_residuals,)
