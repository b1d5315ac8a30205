"""Output-error refinement of the motion method (multiple shooting through the torch skeleton).

Oracles: torch autograd (the hand-propagated tangents of the integrator), central differences
(the joint problem's Jacobian as the solver sees it), and synthetic motion that the true model
itself produced (the output error vanishes there, and the refinement returns to the truth).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim  # noqa: E402

from pipeline.calibrate.losses import Objective  # noqa: E402
from pipeline.dynamics.build import load_skeleton  # noqa: E402
from pipeline.dynamics.identify import (  # noqa: E402
    EquationError,
    EquationErrorTracking,
    MotionTrials,
)
from pipeline.dynamics.output_error import (  # noqa: E402
    JointOutputError,
    OutputErrorTracking,
    ShootingProblem,
    ShootingSettings,
    catmull_rom_weights,
    cubic,
    refine_output_error,
    segment_starts,
)
from pipeline.dynamics.skeleton import mass_matrix  # noqa: E402
from pipeline.dynamics.synthetic import make_motion_problem  # noqa: E402
from pipeline.errors import CalibrationError  # noqa: E402

quiet_opensim()


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    return load_skeleton(model_path("demo-arm", tmp_path_factory.mktemp("arm")))


def test_segments_lie_inside_the_valid_runs():
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[0, 3:27] = True
    mask[1, 0:10] = True
    mask[1, 15:30] = True
    trials, firsts = segment_starts(mask, 5)
    assert trials.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert firsts.tolist() == [3, 8, 13, 18, 0, 15, 20]
    for t, f in zip(trials, firsts, strict=True):
        assert mask[t, f:f + 6].all()


def test_catmull_rom_interpolates_the_samples_and_cubics_exactly():
    t = torch.arange(8, dtype=torch.float64)
    x = (0.3 * t ** 2 - t + 2.0)[None, :, None]  # quadratics are reproduced exactly
    for s in (0.0, 0.25, 0.5, 1.0):
        expected = 0.3 * (3 + s) ** 2 - (3 + s) + 2.0
        assert float(cubic(x, 3, s)) == pytest.approx(expected, abs=1e-12)
        assert sum(catmull_rom_weights(s)) == pytest.approx(1.0, abs=1e-15)
        w = catmull_rom_weights(s)
        assert float(sum(c * x[0, 2 + j, 0] for j, c in enumerate(w))) == \
            pytest.approx(float(cubic(x, 3, s)), abs=1e-12)


def _problem(arm, n_samples=60, seed=0):
    return make_motion_problem(arm, n_samples=n_samples, seed=seed)


@pytest.mark.parametrize("integrator", ["rk4", "euler"])
def test_integrator_tangents_equal_autograd(arm, integrator):
    """Two coordinates simulated, one prescribed: the exact derivative of the discrete
    integrator with respect to each segment's moments and to the inertial combinations."""
    mp = _problem(arm, n_samples=40)
    driven = list(arm.coordinates[:2])
    window = torch.zeros_like(mp.motion.mask, dtype=torch.bool)
    window[:, 10:17] = True  # two segments per trial
    shooting = ShootingProblem(arm, mp.motion, driven, mask=window, dt_s=0.01,
                               settings=ShootingSettings(segment_s=0.03, integrator=integrator,
                                                         substeps=2))
    gen = torch.Generator().manual_seed(0)
    tau = torch.randn(shooting.n_segments, shooting.samples + 3, 2, dtype=torch.float64,
                      generator=gen)
    basis = EquationError(arm, mp.motion, arm.coordinates).basis
    w = torch.zeros(basis.shape[0], dtype=torch.float64)

    def run(tau_, w_):
        return shooting.simulate(tau_, (arm.inertial.reshape(-1) + basis.T @ w_).reshape(-1, 10))

    sim, tangents = shooting.simulate_with_tangents(tau, arm.inertial, basis)
    assert torch.equal(sim, run(tau, w))
    d_tau, d_w = torch.autograd.functional.jacobian(run, (tau, w))
    n = shooting.n_segments
    own = torch.stack([d_tau[i, :, :, i] for i in range(n)])  # (seg, S, nf, S + 3, nf)
    mine = tangents[..., :(shooting.samples + 3) * 2].reshape(own.shape)
    assert float((own - mine).abs().max()) <= 1e-12 * float(own.abs().max())
    for i in range(n):  # a segment's result does not depend on the others' moments
        others = [j for j in range(n) if j != i]
        assert float(d_tau[i][:, :, others].abs().max()) == 0.0
    assert float((d_w - tangents[..., (shooting.samples + 3) * 2:]).abs().max()) <= \
        1e-10 * float(d_w.abs().max())


def test_simulation_gradcheck(arm):
    mp = _problem(arm, n_samples=30)
    window = torch.zeros_like(mp.motion.mask, dtype=torch.bool)
    window[0, 10:13] = True  # one segment of two steps
    shooting = ShootingProblem(arm, mp.motion, arm.coordinates, mask=window, dt_s=0.01,
                               settings=ShootingSettings(segment_s=0.02))
    assert shooting.n_segments == 1
    tau = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    pi = arm.inertial.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(shooting.residuals, (tau, pi), eps=1e-6, atol=1e-6)


def _simulated_problem(arm, n_samples=60):
    """Make the synthetic problem's motion the true model's own simulation (one shot per trial,
    with the cubic moments the refinement uses), so the output error vanishes at the truth."""
    mp = _problem(arm, n_samples)
    batch = mp.muscles.calibration
    n = batch.mask.shape[1]
    inner = torch.zeros_like(batch.mask, dtype=torch.bool)
    inner[:, 1:n - 1] = True  # one shot from sample 1 to n - 2 (cubic neighbours inside)
    whole = ShootingProblem(arm, mp.motion, arm.coordinates, mask=inner, dt_s=batch.dt_s,
                            settings=ShootingSettings(segment_s=(n - 3) * batch.dt_s))
    assert whole.n_segments == batch.mask.shape[0] and whole.samples == n - 3
    objective = Objective(mp.muscles.spec, batch, tendon=mp.muscles.tendon,
                          emd_s=mp.muscles.emd_s)
    with torch.no_grad():
        moments = objective.simulate(torch.tensor(mp.muscles.truth)).moments_nm
    q_sim, qd_sim = whole.trajectory(whole.moments(moments, range(3)), mp.pi_true)
    q, qd = mp.motion.q.clone(), mp.motion.qd.clone()
    q[:, 2:n - 1], qd[:, 2:n - 1] = q_sim, qd_sim
    # the samples the one shot simulated (and its start): segments start on its trajectory
    motion = MotionTrials(q, qd, mp.motion.qdd, mp.motion.external, inner & mp.motion.mask)
    return mp, motion, moments


def test_output_error_vanishes_for_the_motion_the_truth_produced(arm):
    mp, motion, moments = _simulated_problem(arm)
    ee = EquationError(arm, motion, arm.coordinates)
    shooting = ShootingProblem(arm, motion, arm.coordinates, mask=ee.mask, dt_s=0.01)
    tau = shooting.moments(moments, range(3))
    assert shooting.angle_rmse_deg(tau, mp.pi_true).max() < 1e-9
    assert shooting.angle_rmse_deg(tau, arm.inertial).min() > 1e-3  # 10 % inertial error
    assert shooting.angle_rmse_deg(tau * 1.02, mp.pi_true).min() > 1e-3  # 2 % stronger


def test_joint_jacobian_equals_central_differences(arm):
    mp, motion, _ = _simulated_problem(arm, n_samples=40)
    prob = mp.muscles
    ee = EquationError(arm, motion, arm.coordinates)
    shooting = ShootingProblem(arm, motion, arm.coordinates, mask=ee.mask, dt_s=0.01,
                               settings=ShootingSettings(segment_s=0.04))
    tracking = OutputErrorTracking(shooting, ee, arm.inertial, range(3))
    objective = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s,
                          tracking=tracking)
    size = (ee.basis @ arm.inertial.reshape(-1)).abs().clamp_min(1e-6).numpy()
    joint = JointOutputError(objective, tracking, -size, size)
    rng = np.random.default_rng(2)
    # small inertial moves: a combination is a difference of large terms, and moving one by
    # several % of its value can leave the mass matrix indefinite along the motion
    x = np.concatenate([prob.truth * (1 + 0.01 * rng.standard_normal(prob.truth.size)),
                        0.01 * size * rng.standard_normal(size.size)])
    x = np.clip(x, joint.spec.lower, joint.spec.upper)
    _, jac = joint.residuals_and_jacobian(torch.as_tensor(x))
    scale = joint.spec.upper - joint.spec.lower
    fd = np.zeros_like(jac)
    for k in range(x.size):
        h = 1e-6 * scale[k]
        up, down = x.copy(), x.copy()
        up[k] += h
        down[k] -= h
        with torch.no_grad():
            fd[:, k] = (joint.all_residuals(torch.as_tensor(up)).numpy()
                        - joint.all_residuals(torch.as_tensor(down)).numpy()) / (2 * h)
    n_track = joint.n_tracking_residuals
    err = np.abs(jac[:n_track] - fd[:n_track]).max(axis=0) / np.abs(fd[:n_track]).max(axis=0)
    assert err.max() < 1e-5, err


def test_refinement_reaches_the_motion_the_truth_produced(arm):
    """Noise-free motion produced by the true model: from muscle parameters 3 % and inertial
    combinations 2 % off, the refinement reproduces the motion (joint-angle error down >100x),
    and the muscle moments along it become the true ones (two short trials do not determine
    every muscle parameter; the equation error's recovery tests cover those)."""
    mp, motion, moments = _simulated_problem(arm, n_samples=40)
    prob = mp.muscles
    ee = EquationError(arm, motion, arm.coordinates)
    objective = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s,
                          tracking=EquationErrorTracking(ee))
    rng = np.random.default_rng(4)
    p0 = np.clip(prob.truth * (1 + 0.03 * rng.standard_normal(prob.truth.size)),
                 prob.spec.lower, prob.spec.upper)
    truth_w = ee.basis @ mp.pi_true.reshape(-1)
    w0 = truth_w * (1 + 0.02 * torch.as_tensor(rng.standard_normal(truth_w.numel())))
    pi0 = (mp.pi_true.reshape(-1) + ee.basis.T @ (w0 - truth_w)).reshape(-1, 10)
    assert float(torch.linalg.eigvalsh(mass_matrix(arm, motion.q, inertial=pi0)).min()) > 0
    out = refine_output_error(objective, ee, motion, p0, pi0,
                              settings=ShootingSettings(segment_s=0.05, max_evaluations=15))
    assert out.loss < 1e-6 * out.loss_before
    assert out.angle_rmse_deg.max() < 5e-3 < 0.5 < out.angle_rmse_deg_before.max()
    with torch.no_grad():
        fitted = objective.simulate(torch.as_tensor(out.p)).moments_nm
    valid = ee.mask[:, None, :].expand_as(fitted)
    rel = (fitted - moments)[valid].norm() / moments[valid].norm()
    start_rel = (objective.simulate(torch.as_tensor(p0)).moments_nm.detach()
                 - moments)[valid].norm() / moments[valid].norm()
    assert float(rel) < 0.05 * float(start_rel), (float(start_rel), float(rel))


def test_a_start_whose_mass_matrix_is_indefinite_is_refused(arm):
    mp, motion, _ = _simulated_problem(arm, n_samples=40)
    prob = mp.muscles
    ee = EquationError(arm, motion, arm.coordinates)
    objective = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s,
                          tracking=EquationErrorTracking(ee))
    pi0 = mp.pi_true.clone()
    pi0[1:, 4:7] *= -1.0  # negative principal inertias: no rigid body
    with pytest.raises(CalibrationError, match="inertia_prior_weight"):
        refine_output_error(objective, ee, motion, prob.truth, pi0,
                            settings=ShootingSettings(segment_s=0.05, max_evaluations=2))


def test_settings_are_checked(arm):
    with pytest.raises(CalibrationError, match="integrator"):
        ShootingSettings.from_config({"integrator": "verlet"})
    mp = _problem(arm, n_samples=30)
    ee = EquationError(arm, mp.motion, arm.coordinates)
    with pytest.raises(CalibrationError, match="segment_s"):
        ShootingProblem(arm, mp.motion, arm.coordinates, mask=ee.mask, dt_s=0.01,
                        settings=dataclasses.replace(ShootingSettings(), segment_s=1.0))
