"""The torch skeleton against OpenSim's own solvers (InverseDynamicsSolver, calcM) and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import (  # noqa: E402
    DEMO_MODELS,
    REAL_TRIALS,
    SHARED_MODELS,
    model_path,
    quiet_opensim,
    random_states,
    write_joint_zoo,
)
from project_paths import SHARED_DATA  # noqa: E402

from pipeline.dynamics import skeleton as sk  # noqa: E402
from pipeline.dynamics.build import load_skeleton, read_motion  # noqa: E402
from pipeline.dynamics.loads import body_loads, read_external_loads  # noqa: E402
from pipeline.dynamics.reference import OpenSimSkeleton  # noqa: E402
from pipeline.errors import ModelError  # noqa: E402

quiet_opensim()
T = torch.tensor


def _close(actual, expected, tol=1e-9):
    """Within ``tol`` absolute, or relative to the largest value when that exceeds one."""
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(np.asarray(actual) - expected).max() <= tol * scale


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.mark.parametrize("name", [*SHARED_MODELS, *DEMO_MODELS, "joint_zoo"])
def test_matches_opensim_on_random_states(name, model_dir):
    path = (write_joint_zoo(model_dir / "zoo.osim") if name == "joint_zoo"
            else model_path(name, model_dir))
    skel = load_skeleton(path)
    ref = OpenSimSkeleton(path)
    q, qd, qdd = random_states(skel, 4)
    rots, origins = ref.body_poses(q)
    kin = sk.kinematics(skel, T(q), T(qd), T(qdd))
    for b in range(skel.n_bodies):
        _close(kin.rotation[b].numpy(), rots[:, b])
        _close(kin.origin[b].numpy(), origins[:, b])
    _close(sk.inverse_dynamics(skel, T(q), T(qd), T(qdd)).numpy(),
           ref.inverse_dynamics(q, qd, qdd))
    _close(sk.bias_forces(skel, T(q), T(qd)).numpy(), ref.inverse_dynamics(q, qd, 0 * qdd))
    _close(sk.mass_matrix(skel, T(q)).numpy(), ref.mass_matrix(q))
    mass, bias = sk.mass_matrix_and_bias(skel, T(q), T(qd))
    _close(mass.numpy(), ref.mass_matrix(q))
    _close(bias.numpy(), ref.inverse_dynamics(q, qd, 0 * qdd))
    loads = np.random.default_rng(3).normal(scale=50.0, size=(len(q), skel.n_bodies, 6))
    _close(sk.inverse_dynamics(skel, T(q), T(qd), T(qdd), loads=T(loads)).numpy(),
           ref.inverse_dynamics(q, qd, qdd, loads))


@pytest.mark.parametrize("name", list(REAL_TRIALS))
def test_matches_opensim_on_real_trials_with_their_external_loads(name):
    model, motion, xml = (None if p is None else SHARED_DATA / p for p in REAL_TRIALS[name])
    if not model.is_file():
        pytest.skip(f"reference data not found at {model}")
    skel = load_skeleton(model)
    times, q_all = read_motion(motion, skel)
    qd_all = np.gradient(q_all, times, axis=0)
    qdd_all = np.gradient(qd_all, times, axis=0)
    if xml is None:
        at = times[5:-5:max(1, len(times) // 6)]
    else:  # the ExternalLoads data's own sample times (OpenSim interpolates between them)
        from pipeline.io.opensim_files import read_sto

        grf_times = read_sto(xml.parent / _datafile(xml)).time_s
        inside = grf_times[(grf_times > times[2]) & (grf_times < times[-3])]
        at = inside[::max(1, len(inside) // 6)]
    q, qd, qdd = (np.column_stack([np.interp(at, times, a[:, k]) for k in range(a.shape[1])])
                  for a in (q_all, qd_all, qdd_all))
    loads = None if xml is None else body_loads(skel, T(q), read_external_loads(xml, skel, at))
    ref = OpenSimSkeleton(model, external_loads=xml)
    _close(sk.inverse_dynamics(skel, T(q), T(qd), T(qdd), loads=loads).numpy(),
           ref.inverse_dynamics(q, qd, qdd, times_s=at))
    if xml is not None:  # the loads matter on these states
        without = OpenSimSkeleton(model).inverse_dynamics(q, qd, qdd)
        assert np.abs(without - ref.inverse_dynamics(q, qd, qdd, times_s=at)).max() > 10.0


def _datafile(xml):
    from xml.etree import ElementTree as ET

    root = ET.parse(xml).getroot()
    found = root.find(".//datafile")
    if found is not None and found.text and found.text.strip():
        return found.text.strip()
    return root.find(".//data_source_name").text.strip()


@pytest.mark.parametrize("name", ["arm26", "demo-leg"])
def test_gradcheck_states_inertia_and_loads(name, model_dir):
    skel = load_skeleton(model_path(name, model_dir))
    q, qd, qdd = (T(a) for a in random_states(skel, 2, seed=5))
    rng = np.random.default_rng(6)
    pi = skel.inertial.clone()
    loads = T(rng.normal(size=(2, skel.n_bodies, 6)))

    def id_(q, qd, qdd, pi, loads):
        return sk.inverse_dynamics(skel, q, qd, qdd, inertial=pi, loads=loads)

    inputs = tuple(t.clone().requires_grad_(True) for t in (q, qd, qdd, pi, loads))
    assert torch.autograd.gradcheck(id_, inputs, fast_mode=True)
    assert torch.autograd.gradcheck(lambda q, pi: sk.mass_matrix(skel, q, inertial=pi),
                                    (inputs[0], inputs[3]), fast_mode=True)


def test_gradcheck_through_coupled_knee_splines():
    path = SHARED_DATA / SHARED_MODELS["rajagopal"]
    if not path.is_file():
        pytest.skip(f"reference data not found at {path}")
    skel = load_skeleton(path)
    q, qd, qdd = (T(a).requires_grad_(True) for a in random_states(skel, 1, seed=9))
    assert torch.autograd.gradcheck(lambda q, qd, qdd: sk.inverse_dynamics(skel, q, qd, qdd),
                                    (q, qd, qdd), fast_mode=True)


def test_unsupported_joint_is_a_clear_error(tmp_path):
    model = opensim.Model()
    body = opensim.Body("b", 1.0, opensim.Vec3(0), opensim.Inertia(0.1, 0.1, 0.1))
    model.addBody(body)
    model.addJoint(opensim.BallJoint("ball", model.getGround(), body))
    model.finalizeConnections()
    path = tmp_path / "ball.osim"
    model.printToXML(str(path))
    with pytest.raises(ModelError, match="ball.osim.*(BallJoint|quaternion).*Fix:"):
        load_skeleton(path)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_skeleton(tmp_path / "absent.osim")
