"""The motion calibration method's building blocks: motion from workflow files, the calibrated
model's inertial properties written through OpenSim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim  # noqa: E402

from pipeline.calibrate.export import write_calibrated_osim  # noqa: E402
from pipeline.calibrate.problem import batch_from_arrays  # noqa: E402
from pipeline.dynamics import skeleton as sk  # noqa: E402
from pipeline.dynamics.build import load_skeleton  # noqa: E402
from pipeline.dynamics.motion_method import (  # noqa: E402
    TrialLoads,
    floating_coordinates,
    motion_trials,
    physically_consistent,
    trial_loads,
)
from pipeline.errors import CalibrationError  # noqa: E402
from pipeline.io.opensim_files import StoTable, write_sto  # noqa: E402

quiet_opensim()


def test_calibrated_osim_carries_the_new_inertial_properties(tmp_path):
    source = model_path("demo-arm-dumbbell", tmp_path)
    values = np.array([2.1, 0.01, -0.15, 0.02, 0.013, 0.004, 0.012, 1e-4, -2e-4, 3e-4])
    out = tmp_path / "calibrated.osim"
    write_calibrated_osim(source, out, {}, bodies={"forearm": values})
    model = opensim.Model(str(out))  # keep the model alive while its body is read
    body = model.getBodySet().get("forearm")
    inertia = body.getInertia()
    read = [body.getMass(), *(body.getMassCenter().get(i) for i in range(3)),
            *(inertia.getMoments().get(i) for i in range(3)),
            *(inertia.getProducts().get(i) for i in range(3))]
    assert np.allclose(read, values, rtol=1e-12, atol=0)
    assert physically_consistent(values)
    assert not physically_consistent(values * np.array([-1] + [1] * 9))
    assert not physically_consistent(np.array([1, 0, 0, 0, 1.0, 0.1, 0.1, 0, 0, 0]))


def test_floating_base_coordinates_carry_the_ground_reactions(tmp_path):
    skel = load_skeleton(model_path("demo-leg", tmp_path))
    dofs = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")
    assert floating_coordinates(skel, dofs) == ("pelvis_tilt", "pelvis_tx", "pelvis_ty")
    arm = load_skeleton(model_path("demo-arm", tmp_path))
    assert floating_coordinates(arm, arm.coordinates) == ()


def _storage(path, times, labels, columns, *, in_degrees):
    write_sto(path, StoTable(times, tuple(labels), np.column_stack(columns), name="motion",
                             in_degrees=in_degrees))


def test_motion_from_an_ik_file_and_external_loads(tmp_path):
    """q, qd, qdd on the NMS time grid from an IK .mot in degrees (spline derivatives of a
    smooth motion), and J^T F of an ExternalLoads file equal to the skeleton's own."""
    skel = load_skeleton(model_path("demo-arm", tmp_path))
    times = np.arange(0.0, 2.0 + 1e-9, 0.01)
    freq = np.array([0.7, 0.9, 1.1])[: skel.n_coordinates]
    q = 0.5 * np.sin(2 * np.pi * freq[None, :] * times[:, None])
    _storage(tmp_path / "ik.mot", times, list(skel.coordinates),
             [np.rad2deg(q[:, k]) for k in range(skel.n_coordinates)], in_degrees=True)
    force = np.column_stack([np.full(times.size, 3.0), -20.0 + 2 * times, 0.5 * times])
    _storage(tmp_path / "grf.mot", times, ["hand_vx", "hand_vy", "hand_vz"],
             [force[:, k] for k in range(3)], in_degrees=False)
    (tmp_path / "loads.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8" ?>\n<OpenSimDocument Version="40000">\n'
        '<ExternalLoads name="loads"><objects><ExternalForce name="push">'
        "<applied_to_body>hand</applied_to_body><force_expressed_in_body>ground"
        "</force_expressed_in_body><force_identifier>hand_v</force_identifier>"
        "<data_source_name>unused.mot</data_source_name></ExternalForce></objects>"
        "<datafile>unused.mot</datafile></ExternalLoads></OpenSimDocument>\n")
    grid = times[20:180]
    n_mtus, n_dofs = 1, skel.n_coordinates
    zeros = np.full((1, n_mtus, grid.size), 0.1)
    batch = batch_from_arrays(excitation=zeros, mtu_length_m=zeros + 0.3,
                              moment_arm_m=np.full((1, n_mtus, n_dofs, grid.size), 0.01),
                              id_moment_nm=np.zeros((1, n_dofs, grid.size)), dt_s=0.01,
                              mtu_names=("m",), dof_names=skel.coordinates, trial_names=("t",))
    batch = dataclasses.replace(batch, time_s=(grid,))
    motion = motion_trials(skel, batch, [tmp_path / "ik.mot"],
                           [TrialLoads(tmp_path / "loads.xml", tmp_path / "grf.mot")],
                           cutoff_hz=None)
    w = 2 * np.pi * freq
    exact = 0.5 * np.sin(w * grid[:, None])
    assert np.allclose(motion.q[0].numpy(), exact, atol=1e-6)
    assert np.allclose(motion.qd[0].numpy(), 0.5 * w * np.cos(w * grid[:, None]), atol=1e-3)
    assert np.allclose(motion.qdd[0].numpy(), -0.5 * w * w * np.sin(w * grid[:, None]),
                       atol=2e-2)
    assert not motion.mask[0, :3].any() and motion.mask[0, 3:-3].all()
    loads = torch.zeros(grid.size, skel.n_bodies, 6, dtype=torch.float64)
    hand = skel.bodies.index("hand")
    loads[:, hand, 3:] = torch.as_tensor(force[20:180])
    expected = sk.generalized_loads(skel, motion.q[0], loads)
    assert torch.allclose(motion.external[0], expected, atol=1e-10)
    with pytest.raises(CalibrationError, match="one entry per"):
        trial_loads(["a.xml"], ["a.mot"], 2)
    assert trial_loads(["none", "b.xml"], ["none", "b.mot"], 2)[0] is None
