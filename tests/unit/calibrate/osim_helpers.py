"""A small OpenSim model with DeGrooteFregly2016 muscles for calibration tests."""

from __future__ import annotations

from pathlib import Path


def build_osim(path: Path, muscles: dict[str, tuple[float, float, float, float]]) -> Path:
    """Write a one-DOF OpenSim model with DeGrooteFregly2016 muscles.

    ``muscles[name] = (optimal_fiber_length_m, tendon_slack_length_m, max_isometric_force_n,
    pennation_rad)``.
    """
    import opensim

    model = opensim.Model()
    model.setName("calibration_test")
    body = opensim.Body("forearm", 1.0, opensim.Vec3(0, -0.15, 0), opensim.Inertia(0.01))
    model.addBody(body)
    joint = opensim.PinJoint("elbow", model.getGround(), opensim.Vec3(0), opensim.Vec3(0),
                             body, opensim.Vec3(0, 0.2, 0), opensim.Vec3(0))
    joint.updCoordinate().setName("elbow_flexion")
    model.addJoint(joint)
    for k, (name, (l0, lts, fmax, phi)) in enumerate(muscles.items()):
        muscle = opensim.DeGrooteFregly2016Muscle()
        muscle.setName(name)
        muscle.setOptimalFiberLength(l0)
        muscle.setTendonSlackLength(lts)
        muscle.setMaxIsometricForce(fmax)
        muscle.setPennationAngleAtOptimalFiberLength(phi)
        muscle.addNewPathPoint(f"{name}_origin", model.getGround(),
                               opensim.Vec3(0.02 * (k + 1), 0.3, 0))
        muscle.addNewPathPoint(f"{name}_insertion", body, opensim.Vec3(0.02, 0.1, 0))
        model.addForce(muscle)
    model.finalizeConnections()
    model.printToXML(str(path))
    return path
