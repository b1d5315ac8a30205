"""Equation-error identification: recovery on synthetic trials with known truth, anchors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim  # noqa: E402

from pipeline.calibrate.losses import Objective  # noqa: E402
from pipeline.calibrate.synthetic import (  # noqa: E402
    make_problem,
    perturbed_start,
    recovery_errors,
)
from pipeline.dynamics import skeleton as sk  # noqa: E402
from pipeline.dynamics.build import load_skeleton  # noqa: E402
from pipeline.dynamics.identify import (  # noqa: E402
    Anchor,
    EquationError,
    MotionTrials,
    equation_error_residuals,
    solve_equation_error,
)
from pipeline.errors import CalibrationError  # noqa: E402

quiet_opensim()


def _motion(skel, n_trials, n_time, dt_s, seed):
    """Smooth multi-sine motion with exact velocities and accelerations."""
    rng = np.random.default_rng(seed)
    shape = (n_trials, 1, skel.n_coordinates, 3)
    amp, freq, phase = (torch.tensor(rng.uniform(lo, hi, shape))
                        for lo, hi in ((0.3, 1.0), (0.5, 3.0), (0.0, 6.0)))
    t = (torch.arange(n_time, dtype=torch.float64) * dt_s)[None, :, None, None]
    w = 2 * np.pi * freq
    return ((amp * torch.sin(w * t + phase)).sum(-1), (amp * w * torch.cos(w * t + phase)).sum(-1),
            (-amp * w * w * torch.sin(w * t + phase)).sum(-1))


@pytest.fixture(scope="module")
def arm_problem(tmp_path_factory):
    """demo-arm skeleton with perturbed inertia, a synthetic 6-MTU muscle model on its 3 DOFs and
    a measured external load that closes the equation with the truth."""
    skel = load_skeleton(model_path("demo-arm", tmp_path_factory.mktemp("m")))
    prob = make_problem(n_mtus=6, n_dofs=3, n_calibration=2, n_validation=1, n_samples=200,
                        seed=0)
    objective = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s)
    with torch.no_grad():
        muscle = objective.simulate(torch.tensor(prob.truth)).moments_nm.transpose(1, 2)
    q, qd, qdd = _motion(skel, 2, muscle.shape[1], prob.calibration.dt_s, seed=3)
    rng = np.random.default_rng(5)
    pi_true = skel.inertial * torch.tensor(1 + 0.1 * rng.standard_normal(skel.inertial.shape))
    external = sk.inverse_dynamics(skel, q, qd, qdd, inertial=pi_true) - muscle
    motion = MotionTrials(q, qd, qdd, external, prob.calibration.mask)
    return skel, prob, objective, motion, pi_true


def test_noise_free_recovery_of_muscle_and_identifiable_inertial_parameters(arm_problem):
    skel, prob, objective, motion, pi_true = arm_problem
    problem = EquationError(skel, motion, skel.coordinates)
    assert problem.anchored_by == "external loads"
    assert problem.identifiability.rank == 16  # of 40: the thorax is welded to ground
    p0 = perturbed_start(prob.spec, prob.truth, seed=1)
    p = solve_equation_error(equation_error_residuals(problem, objective), prob.spec, p0,
                             max_evaluations=60)
    muscle_error_pct = np.concatenate(list(recovery_errors(prob.spec, p,
                                                           prob.truth).values()))
    assert muscle_error_pct.mean() < 0.05
    with torch.no_grad():
        moments = objective.simulate(torch.tensor(p)).moments_nm.transpose(1, 2)
    fit = problem.fit_inertia(moments[problem.mask])
    truth = problem.basis @ pi_true.reshape(-1)
    estimate = problem.basis @ fit.pi.reshape(-1)
    assert float((estimate - truth).norm() / truth.norm()) < 5e-4
    # what the data cannot see stays at the prior
    null = torch.eye(40, dtype=torch.float64) - problem.basis.T @ problem.basis
    assert torch.allclose(null @ fit.pi.reshape(-1), null @ skel.inertial.reshape(-1),
                          atol=1e-9)


def test_no_anchor_stops_with_a_clear_message(arm_problem):
    skel, _, _, motion, _ = arm_problem
    free = MotionTrials(motion.q, motion.qd, motion.qdd, torch.zeros_like(motion.external),
                        motion.mask)
    with pytest.raises(CalibrationError, match="force/mass scale.*Fix: give an anchor"):
        EquationError(skel, free, skel.coordinates, source="subject01")
    # the arm's body mass cannot anchor: the thorax (welded) absorbs any total
    with pytest.raises(CalibrationError, match="force/mass scale"):
        EquationError(skel, free, skel.coordinates, anchor=Anchor(body_mass_kg=70.0))


def test_a_payload_of_known_inertia_anchors_the_scale(arm_problem):
    skel, _, _, motion, _ = arm_problem
    free = MotionTrials(motion.q, motion.qd, motion.qdd, torch.zeros_like(motion.external),
                        motion.mask)
    problem = EquationError(skel, free, skel.coordinates, anchor=Anchor(known_bodies=("hand",)))
    assert problem.anchored_by == "known bodies"
    # the hand is welded to the forearm: the forearm's parameters still span the same space
    assert problem.identifiability.rank == 16
    assert not problem.estimated.reshape(-1, 10)[skel.bodies.index("hand")].any()
    with pytest.raises(CalibrationError, match="not in the model"):
        EquationError(skel, free, skel.coordinates, anchor=Anchor(known_bodies=("barbell",)))
