"""The composite-rigid-body mass matrix against the inverse dynamics of unit accelerations.

OpenSim's ``calcM`` is the oracle in test_dynamics_skeleton.py; here the oracle is the skeleton's
own inverse dynamics, one unit acceleration per column, which is what M is by definition. It
covers what OpenSim cannot: per-state inertial parameters, batch shapes, a coordinate that moves
two joints, and the bias forces' identity with the inverse dynamics at qdd = 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim, random_states, write_joint_zoo  # noqa: E402

from pipeline.dynamics import skeleton as sk  # noqa: E402
from pipeline.dynamics.build import load_skeleton  # noqa: E402

quiet_opensim()
T = torch.tensor


def mass_by_columns(skel, q, inertial=None):
    """M column by column: inverse dynamics of each unit acceleration at rest, no gravity."""
    n = skel.n_coordinates
    qs = q.unsqueeze(-2).expand(*q.shape[:-1], n, n)
    eye = torch.eye(n, dtype=q.dtype).expand_as(qs)
    pi = None if inertial is None else inertial.unsqueeze(-3)
    return sk.inverse_dynamics(skel, qs, torch.zeros_like(qs), eye, inertial=pi,
                               gravity=False).transpose(-1, -2)


def perturbed_inertial(skel, shape, seed):
    noise = np.random.default_rng(seed).normal(scale=0.1, size=(*shape, *skel.inertial.shape))
    return skel.inertial * (1 + T(noise))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def _skeleton(name, model_dir):
    if name == "joint_zoo":
        return load_skeleton(write_joint_zoo(model_dir / "zoo.osim"))
    return load_skeleton(model_path(name, model_dir))


def _assert_close(actual, expected, rel=1e-12):
    scale = max(1.0, float(expected.abs().max()))
    assert float((actual - expected).abs().max()) <= rel * scale


# rajagopal: one coordinate on six axes (walker knee); gait10dof18musc: spline knee translations
# and welds; joint_zoo: every other joint type at odd frame offsets
@pytest.mark.parametrize("name", ["joint_zoo", "demo-leg", "demo-arm-dumbbell", "gait10dof18musc",
                                  "rajagopal"])
def test_equals_inverse_dynamics_of_unit_accelerations(name, model_dir):
    skel = _skeleton(name, model_dir)
    q, qd, _ = (T(a) for a in random_states(skel, 6, seed=11))
    pi = perturbed_inertial(skel, (6,), seed=12)
    for inertial in (None, pi):
        expected = mass_by_columns(skel, q, inertial)
        mass = sk.mass_matrix(skel, q, inertial=inertial)
        _assert_close(mass, expected)
        _assert_close(mass.transpose(-1, -2), mass, 1e-14)
        both, bias = sk.mass_matrix_and_bias(skel, q, qd, inertial=inertial)
        _assert_close(both, expected)
        assert torch.equal(bias, sk.inverse_dynamics(skel, q, qd, torch.zeros_like(qd),
                                                     inertial=inertial))
    loads = T(np.random.default_rng(13).normal(scale=50.0, size=(6, skel.n_bodies, 6)))
    _, bias = sk.mass_matrix_and_bias(skel, q, qd, inertial=pi, loads=loads)
    _assert_close(bias, sk.bias_forces(skel, q, qd, inertial=pi)
                  - sk.generalized_loads(skel, q, loads))


def test_batches_over_states_and_inertial_parameters(model_dir):
    skel = _skeleton("demo-leg", model_dir)
    q = T(random_states(skel, 6, seed=1)[0]).reshape(2, 3, -1)
    pi = perturbed_inertial(skel, (3,), seed=2)  # one set per column of the batch
    mass = sk.mass_matrix(skel, q, inertial=pi)
    assert mass.shape == (2, 3, skel.n_coordinates, skel.n_coordinates)
    for i in range(2):
        for k in range(3):
            _assert_close(mass[i, k], mass_by_columns(skel, q[i, k], pi[k]))
    several = sk.mass_matrix(skel, q[0, 0], inertial=pi)  # one state, three inertial sets
    assert several.shape == (3, skel.n_coordinates, skel.n_coordinates)
    _assert_close(several[2], mass_by_columns(skel, q[0, 0], pi[2]))


def test_a_coordinate_moving_two_joints(model_dir):
    """The knee's coordinate also drives the ankle: both joints' columns add into its row."""
    skel = _skeleton("demo-leg", model_dir)
    names = [j.name for j in skel.joints]
    knee = next(j for j in skel.joints if j.rotations and "knee" in j.name)
    knee_coordinate = next(t.coordinate for t in knee.rotations if t.coordinate is not None)
    a = next(i for i, j in enumerate(skel.joints) if "ankle" in j.name and j.rotations)
    ankle = skel.joints[a]
    coupled = dataclasses.replace(ankle, rotations=tuple(
        dataclasses.replace(t, coordinate=knee_coordinate) if t.coordinate is not None else t
        for t in ankle.rotations))
    joints = (*skel.joints[:a], coupled, *skel.joints[a + 1:])
    coupled_skel = dataclasses.replace(skel, joints=joints)
    assert names == [j.name for j in coupled_skel.joints]
    q, qd, _ = (T(a) for a in random_states(skel, 4, seed=3))
    expected = mass_by_columns(coupled_skel, q)
    mass, bias = sk.mass_matrix_and_bias(coupled_skel, q, qd)
    _assert_close(mass, expected)
    _assert_close(sk.mass_matrix(coupled_skel, q), expected)
    assert not torch.allclose(mass, sk.mass_matrix(skel, q))


@pytest.mark.parametrize("name", ["demo-leg", "gait10dof18musc", "rajagopal"])
def test_gradcheck_mass_matrix_and_bias(name, model_dir):
    skel = _skeleton(name, model_dir)
    q, qd, _ = (T(a) for a in random_states(skel, 2, seed=7))
    pi = perturbed_inertial(skel, (), seed=8)
    loads = T(np.random.default_rng(9).normal(size=(2, skel.n_bodies, 6)))
    inputs = tuple(t.clone().requires_grad_(True) for t in (q, qd, pi, loads))
    assert torch.autograd.gradcheck(
        lambda q, qd, pi, loads: sk.mass_matrix_and_bias(skel, q, qd, inertial=pi, loads=loads),
        inputs, fast_mode=True)
    assert torch.autograd.gradcheck(lambda q, pi: sk.mass_matrix(skel, q, inertial=pi),
                                    (inputs[0], inputs[2]), fast_mode=True)


@pytest.mark.parametrize("name", ["joint_zoo", "rajagopal"])
def test_poses_equal_the_full_kinematics(name, model_dir):
    skel = _skeleton(name, model_dir)
    q, qd, qdd = (T(a) for a in random_states(skel, 3, seed=4))
    full, pose = sk.kinematics(skel, q, qd, qdd), sk.poses(skel, q)
    for b in range(skel.n_bodies):
        _assert_close(pose.rotation[b], full.rotation[b], 1e-14)
        _assert_close(pose.origin[b], full.origin[b], 1e-14)
    for j in range(len(skel.joints)):
        _assert_close(pose.joint_origin[j], full.joint_origin[j], 1e-14)
        assert pose.joint_columns[j].keys() == full.joint_columns[j].keys()
        for k, (ang, lin) in pose.joint_columns[j].items():
            _assert_close(ang, full.joint_columns[j][k][0], 1e-14)
            _assert_close(lin, full.joint_columns[j][k][1], 1e-14)
