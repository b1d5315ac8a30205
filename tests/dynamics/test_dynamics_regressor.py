"""tau = Y(q, qd, qdd) pi: the regressor against inverse dynamics and against OpenSim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim, random_states  # noqa: E402

from pipeline.dynamics import skeleton as sk  # noqa: E402
from pipeline.dynamics.build import (  # noqa: E402
    inertial_parameters,
    load_skeleton,
    opensim_mass_properties,
)
from pipeline.dynamics.identifiability import identifiability  # noqa: E402
from pipeline.dynamics.reference import OpenSimSkeleton  # noqa: E402

quiet_opensim()
T = torch.tensor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def test_mass_properties_round_trip():
    rng = np.random.default_rng(0)
    mass, com = 3.2, rng.normal(size=3) * 0.1
    moments, products = np.array([0.2, 0.25, 0.3]), np.array([0.01, -0.02, 0.015])
    back = opensim_mass_properties(inertial_parameters(mass, com, moments, products))
    np.testing.assert_allclose(back[0], mass)
    for a, b in zip(back[1:], (com, moments, products), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-14)


@pytest.mark.parametrize("name", ["arm26", "gait10dof18musc", "rajagopal", "demo-leg"])
def test_regressor_times_random_parameters_is_inverse_dynamics(name, model_dir):
    skel = load_skeleton(model_path(name, model_dir))
    q, qd, qdd = (T(a) for a in random_states(skel, 5, seed=2))
    pi = T(np.random.default_rng(4).normal(size=(skel.n_bodies, 10)))
    y = sk.regressor(skel, q, qd, qdd)
    expected = sk.inverse_dynamics(skel, q, qd, qdd, inertial=pi)
    assert torch.allclose(y @ pi.flatten(), expected, rtol=0, atol=1e-10 * max(
        1.0, float(expected.abs().max())))


def _set_body_parameters(model, pis):
    for body, pi in zip(model.getBodySet(), pis, strict=True):
        mass, com, moments, products = opensim_mass_properties(pi)
        body.setMass(float(mass))
        body.setMassCenter(opensim.Vec3(*map(float, com)))
        body.setInertia(opensim.Inertia(*map(float, moments), *map(float, products)))


@pytest.mark.parametrize("name", ["arm26", "demo-arm"])
def test_regressor_columns_equal_opensim_with_one_parameter_changed(name, model_dir):
    path = model_path(name, model_dir)
    skel = load_skeleton(path)
    q, qd, qdd = random_states(skel, 3, seed=7)
    y = sk.regressor(skel, T(q), T(qd), T(qdd)).numpy()
    ref = OpenSimSkeleton(path)
    base = skel.inertial.numpy()
    for j in range(base.size):
        b, k = divmod(j, 10)
        typical = (base[b, 0] if k == 0 else 0.1 * base[b, 0] if k < 4
                   else base[b, 4:7].mean())
        step = 1e-2 * typical
        columns = []
        for sign in (1, -1):
            pis = base.copy()
            pis[b, k] += sign * step
            _set_body_parameters(ref.model, pis)
            ref.state = ref.model.initSystem()
            columns.append(ref.inverse_dynamics(q, qd, qdd))
        from_opensim = (columns[0] - columns[1]) / (2 * step)
        scale = max(1.0, np.abs(columns[0]).max() / step)
        assert np.abs(y[..., j] - from_opensim).max() <= 1e-9 * scale, (b, k)


@pytest.mark.parametrize(("name", "rank", "no_effect"), [("arm26", 10, 1),
                                                         ("gait10dof18musc", 27, 72)])
def test_identifiable_combinations_of_rich_motions(name, rank, no_effect, model_dir):
    skel = load_skeleton(model_path(name, model_dir))
    q, qd, qdd = (T(a) for a in random_states(skel, 200, seed=11))
    result = identifiability(sk.regressor(skel, q, qd, qdd))
    assert result.rank == rank
    assert int(result.no_effect.sum()) == no_effect
    # the identifiable projection of the model's parameters reproduces the torques
    pi = skel.inertial.flatten().numpy()
    reduced = result.basis.T @ result.project(pi)
    y = sk.regressor(skel, q, qd, qdd).numpy()
    np.testing.assert_allclose(y @ reduced, y @ pi, atol=1e-9 * np.abs(y @ pi).max())
