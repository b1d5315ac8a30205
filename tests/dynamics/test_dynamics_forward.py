"""Forward dynamics against OpenSim's Manager; multiple shooting; constraints refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim  # noqa: E402

from pipeline.dynamics import forward as fw  # noqa: E402
from pipeline.dynamics import skeleton as sk  # noqa: E402
from pipeline.dynamics.build import load_skeleton  # noqa: E402
from pipeline.dynamics.reference import opensim_forward  # noqa: E402
from pipeline.errors import CalibrationError  # noqa: E402

quiet_opensim()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dt", "tol"), [
    ("arm26", 5e-3, 1e-6),
    ("demo-arm", 2.5e-3, 1e-6),
    # the knee's spline translations have jumps in their higher derivatives at the knots, where
    # a fixed-step RK4 loses order (OpenSim's error-controlled integrator refines its steps):
    # measured 3.3e-5 rad at 5 ms, 3.1e-6 at 1 ms, 1.1e-6 at 0.25 ms (a floor near 1e-6, from
    # the splines rebuilt in torch rather than the step); 5 ms keeps the test short
    ("gait10dof18musc", 5e-3, 5e-5),
])
def test_simulation_matches_opensim_manager_over_half_a_second(name, dt, tol, model_dir):
    path = model_path(name, model_dir)
    skel = load_skeleton(path)
    n = skel.n_coordinates
    rng = np.random.default_rng(0)
    lo, hi = skel.coordinate_ranges[:, 0].numpy(), skel.coordinate_ranges[:, 1].numpy()
    q0 = np.clip((lo + hi) / 2, -1.0, 1.0)
    qd0 = 0.5 * rng.standard_normal(n)
    # torques of a few N m (or N), smaller on light segments (about 10 rad/s^2 on those)
    inertia = np.diag(sk.mass_matrix(skel, torch.tensor(q0)).numpy())
    sines = np.column_stack([np.minimum(10 * inertia, 5.0) * rng.uniform(0.5, 1.5, n),
                             rng.uniform(2, 10, n), rng.uniform(0, 6, n),
                             np.minimum(5 * inertia, 1.0) * rng.uniform(-1, 1, n)])
    times = (0.25, 0.5)
    expected = opensim_forward(path, q0, qd0, sines, times)
    s = torch.tensor(sines)

    def tau(t, q, qd):
        return s[:, 0] * torch.sin(s[:, 1] * t + s[:, 2]) + s[:, 3]

    qs, _ = fw.simulate(skel, torch.tensor(q0), torch.tensor(qd0), tau, dt_s=dt,
                        n_steps=round(0.5 / dt))
    actual = qs[[round(t / dt) for t in times]].numpy()
    assert np.abs(expected - q0).max() > 0.05  # it moved
    assert np.abs(actual - expected).max() < tol


def test_models_with_enforced_constraints_are_refused_for_simulation(shared_data):
    skel = load_skeleton(shared_data / "opensim-core/rajagopal-walk/subject_walk_scaled.osim")
    q = torch.zeros(skel.n_coordinates, dtype=torch.float64)
    with pytest.raises(CalibrationError, match="patellofemoral.*Fix:"):
        fw.simulate(skel, q, q, lambda t, q, qd: q * 0, dt_s=0.01, n_steps=1)


def _trial(skel, n_time, dt):
    t = torch.arange(n_time, dtype=torch.float64)[:, None] * dt
    w = torch.linspace(3.0, 5.0, skel.n_coordinates, dtype=torch.float64)
    q = (0.6 * torch.sin(w * t + 0.3))[None]
    qd = (0.6 * w * torch.cos(w * t + 0.3))[None]
    return q, qd, (-0.6 * w * w * torch.sin(w * t + 0.3))[None]


def test_multiple_shooting_error_vanishes_for_the_true_model_only(model_dir):
    skel = load_skeleton(model_path("arm26", model_dir))
    dt = 2e-3
    q, qd, qdd = _trial(skel, 61, dt)
    tau = sk.inverse_dynamics(skel, q, qd, qdd)
    truth = fw.shooting_error(skel, q, qd, tau, dt_s=dt, segment_steps=10)
    wrong = fw.shooting_error(skel, q, qd, tau, dt_s=dt, segment_steps=10,
                              inertial=skel.inertial * 1.1)
    assert float(truth) < 1e-10
    assert float(wrong) > 1e3 * float(truth)
    euler = fw.shooting_error(skel, q, qd, tau, dt_s=dt, segment_steps=10, method="euler")
    assert float(truth) < float(euler)


def test_multiple_shooting_gradcheck(model_dir):
    skel = load_skeleton(model_path("arm26", model_dir))
    dt = 5e-3
    q, qd, qdd = _trial(skel, 7, dt)
    tau = sk.inverse_dynamics(skel, q, qd, qdd).detach().requires_grad_(True)
    pi = skel.inertial.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda tau, pi: fw.shooting_error(skel, q, qd, tau, dt_s=dt, segment_steps=3,
                                          inertial=pi), (tau, pi), fast_mode=True)
