"""The elastic tendon against an OpenSim forward simulation of a DeGrooteFregly2016Muscle.

A muscle runs from the ground to a body on a slider whose coordinate is prescribed, so the MTU
length equals the coordinate. Activation dynamics are off in OpenSim (activation = control), the
tendon is compliant (explicit mode), and both models receive the same MTU length and activation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.nms import curves
from pipeline.nms.tendon import elastic_fiber_kinematics, tendon_strain

osim = pytest.importorskip("opensim")

FMAX_N, L0_M, LTS_M, PHI0_RAD = 1000.0, 0.10, 0.20, 0.2
LMT_MEAN_M, LMT_AMP_M, LMT_OMEGA = 0.303, 0.012, 2.0 * math.pi * 0.8
ACT_MEAN, ACT_AMP, ACT_OMEGA = 0.5, 0.3, 2.0 * math.pi * 1.3


def _opensim_tendon_force(times_s: np.ndarray, damping: float) -> np.ndarray:
    model = osim.Model()
    model.setGravity(osim.Vec3(0.0))
    body = osim.Body("slider_body", 1.0, osim.Vec3(0.0), osim.Inertia(0.1))
    model.addBody(body)
    joint = osim.SliderJoint("slider", model.getGround(), body)
    coordinate = joint.updCoordinate()
    coordinate.setName("mtu_length")
    # Cosines (phase pi/2) so both inputs start at rest, matching the static start.
    coordinate.setPrescribedFunction(osim.Sine(LMT_AMP_M, LMT_OMEGA, math.pi / 2, LMT_MEAN_M))
    coordinate.setDefaultIsPrescribed(True)
    coordinate.setDefaultValue(LMT_MEAN_M + LMT_AMP_M)
    model.addJoint(joint)
    muscle = osim.DeGrooteFregly2016Muscle()
    muscle.setName("muscle")
    muscle.set_max_isometric_force(FMAX_N)
    muscle.set_optimal_fiber_length(L0_M)
    muscle.set_tendon_slack_length(LTS_M)
    muscle.set_pennation_angle_at_optimal(PHI0_RAD)
    muscle.set_fiber_damping(damping)
    muscle.set_ignore_tendon_compliance(False)
    muscle.set_tendon_compliance_dynamics_mode("explicit")
    muscle.set_ignore_activation_dynamics(True)
    muscle.addNewPathPoint("origin", model.getGround(), osim.Vec3(0.0))
    muscle.addNewPathPoint("insertion", body, osim.Vec3(0.0))
    model.addForce(muscle)
    controller = osim.PrescribedController()
    controller.addActuator(muscle)
    controller.prescribeControlForActuator(
        "muscle", osim.Sine(ACT_AMP, ACT_OMEGA, math.pi / 2, ACT_MEAN))
    model.addController(controller)
    state = model.initSystem()
    model.equilibrateMuscles(state)
    manager = osim.Manager(model)
    manager.setIntegratorAccuracy(1e-10)
    manager.initialize(state)
    forces = []
    for t in times_s:
        if t > 0.0:
            state = manager.integrate(float(t))
        model.realizeDynamics(state)
        assert abs(muscle.getLength(state) - (LMT_MEAN_M + LMT_AMP_M * math.cos(LMT_OMEGA * t))) \
            < 1e-9
        forces.append(muscle.getTendonForce(state))
    return np.asarray(forces)


@pytest.mark.parametrize("damping", [0.0, 0.01])
def test_tendon_force_matches_opensim(damping: float) -> None:
    dt_s, duration_s = 0.002, 1.5
    times = np.arange(round(duration_s / dt_s) + 1) * dt_s
    expected = _opensim_tendon_force(times, damping)

    f64 = torch.float64
    lmt = torch.as_tensor(LMT_MEAN_M + LMT_AMP_M * np.cos(LMT_OMEGA * times)).reshape(1, 1, -1)
    act = torch.as_tensor(ACT_MEAN + ACT_AMP * np.cos(ACT_OMEGA * times)).reshape(1, 1, -1)
    geometry = {"optimal_fiber_length_m": torch.tensor([L0_M], dtype=f64),
                "tendon_slack_length_m": torch.tensor([LTS_M], dtype=f64),
                "pennation_at_optimal_rad": torch.tensor([PHI0_RAD], dtype=f64)}
    length, _ = elastic_fiber_kinematics(act, lmt, **geometry,
                                         damping=torch.tensor([damping], dtype=f64), dt_s=dt_s)
    strain = tendon_strain(lmt, length, **geometry)
    ours = (FMAX_N * curves.tendon_force_length(1.0 + strain))[0, 0].numpy()

    assert expected.max() > 300.0  # the comparison spans a real force range
    rms = float(np.sqrt(np.mean((ours - expected) ** 2)))
    assert rms < 0.01 * expected.max(), f"RMS {rms:.2f} N vs peak {expected.max():.1f} N"
