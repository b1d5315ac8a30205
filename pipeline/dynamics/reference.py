"""OpenSim's own solvers on given states: the oracle for the torch skeleton (tests, benchmark).

The model's forces (muscles, springs...) are switched off so only the skeleton remains; gravity
stays. Coordinates follow the Skeleton's order (OpenSim's mobility order).
"""

from __future__ import annotations

import numpy as np


class OpenSimSkeleton:
    """An OpenSim model reduced to its skeleton, evaluated state by state."""

    def __init__(self, model_or_path, *, gravity: bool = True, external_loads=None):
        import opensim

        model = (opensim.Model(str(model_or_path)) if not isinstance(model_or_path, opensim.Model)
                 else model_or_path)
        for force in model.getForceSet():
            force.set_appliesForce(False)
        if external_loads is not None:  # OpenSim's own ExternalForces, as its ID tool adds them
            model.addModelComponent(opensim.ExternalLoads(str(external_loads), True))
        if not gravity:
            model.setGravity(opensim.Vec3(0, 0, 0))
        self.model = model
        self.state = model.initSystem()
        self.solver = opensim.InverseDynamicsSolver(model)
        self.n = self.state.getNU()
        self.n_mobod = model.getBodySet().getSize() + 1
        self._body_mobod = [b.getMobilizedBodyIndex() for b in model.getBodySet()]

    def _set(self, q, qd, time_s: float = 0.0):
        import opensim

        self.state.setTime(float(time_s))
        self.state.setQ(opensim.Vector(list(map(float, q))))
        self.state.setU(opensim.Vector(list(map(float, qd))))
        self.model.realizeAcceleration(self.state)

    def inverse_dynamics(self, q, qd, qdd, loads=None, times_s=None) -> np.ndarray:
        """(n_states, n): generalized forces; ``loads`` (n_states, n_bodies, 6) as in skeleton;
        ``times_s`` sets the state time (for ExternalLoads given to the constructor)."""
        import opensim

        out = np.empty((len(q), self.n))
        for i in range(len(q)):
            self._set(q[i], qd[i], 0.0 if times_s is None else times_s[i])
            udot = opensim.Vector(list(map(float, qdd[i])))
            if loads is None:
                tau = self.solver.solve(self.state, udot)
            else:
                body_forces = opensim.VectorOfSpatialVec(
                    self.n_mobod, opensim.SpatialVec(opensim.Vec3(0), opensim.Vec3(0)))
                for b, mobod in enumerate(self._body_mobod):
                    m, f = loads[i, b, :3], loads[i, b, 3:]
                    body_forces.set(mobod, opensim.SpatialVec(opensim.Vec3(*map(float, m)),
                                                              opensim.Vec3(*map(float, f))))
                body_forces = self._add_gravity(body_forces)
                tau = self.solver.solve(self.state, udot, opensim.Vector(self.n, 0.0), body_forces)
            out[i] = [tau.get(k) for k in range(self.n)]
        return out

    def _add_gravity(self, body_forces):
        """Gravity as applied body forces (the 4-argument solver ignores force elements)."""
        import opensim

        g = np.array([self.model.getGravity().get(k) for k in range(3)])
        for body, mobod in zip(self.model.getBodySet(), self._body_mobod, strict=True):
            rot = body.getTransformInGround(self.state).R()
            c_body = body.getMassCenter()
            c = rot.multiply(c_body)
            c = np.array([c.get(k) for k in range(3)])
            weight = body.getMass() * g
            old = body_forces.get(mobod)
            moment = np.array([old.get(0).get(k) for k in range(3)]) + np.cross(c, weight)
            force = np.array([old.get(1).get(k) for k in range(3)]) + weight
            body_forces.set(mobod, opensim.SpatialVec(opensim.Vec3(*moment), opensim.Vec3(*force)))
        return body_forces

    def mass_matrix(self, q) -> np.ndarray:
        import opensim

        out = np.empty((len(q), self.n, self.n))
        matter = self.model.getMatterSubsystem()
        for i in range(len(q)):
            self._set(q[i], np.zeros(self.n))
            mat = opensim.Matrix()
            matter.calcM(self.state, mat)
            out[i] = [[mat.get(r, c) for c in range(self.n)] for r in range(self.n)]
        return out

    def body_poses(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Rotations (n_states, n_bodies, 3, 3) and origins (n_states, n_bodies, 3) in ground."""
        rots = np.empty((len(q), self.n_mobod - 1, 3, 3))
        origins = np.empty((len(q), self.n_mobod - 1, 3))
        for i in range(len(q)):
            self._set(q[i], np.zeros(self.n))
            for b, body in enumerate(self.model.getBodySet()):
                x = body.getTransformInGround(self.state)
                mat = x.R().asMat33()
                rots[i, b] = [[mat.get(r, c) for c in range(3)] for r in range(3)]
                origins[i, b] = [x.p().get(k) for k in range(3)]
        return rots, origins


def opensim_forward(path, q0, qd0, sines, times_s, *, accuracy: float = 1e-12) -> np.ndarray:
    """OpenSim Manager simulation of the skeleton driven by one CoordinateActuator per coordinate.

    ``sines``: per coordinate (in ``coordinate_names`` order, the mobility order) the torque
    ``amplitude * sin(omega t + phase) + offset``; muscles and other forces are off. Returns q at
    ``times_s`` (n_times, n).
    """
    import opensim

    model = opensim.Model(str(path))
    # remove the forces (not just switch them off: muscles would still integrate their states)
    model.updForceSet().clearAndDestroy()
    model.updControllerSet().clearAndDestroy()
    state = model.initSystem()
    from pipeline.dynamics.build import coordinate_order

    names = coordinate_order(model, state)
    controller = opensim.PrescribedController()
    controller.setName("torques")
    for name, (amplitude, omega, phase, offset) in zip(names, sines, strict=True):
        actuator = opensim.CoordinateActuator(name)
        actuator.setName(f"tau_{name}")
        actuator.setOptimalForce(1.0)
        actuator.setMinControl(-1e9)
        actuator.setMaxControl(1e9)
        model.addForce(actuator)
        controller.addActuator(actuator)
        controller.prescribeControlForActuator(
            f"tau_{name}", opensim.Sine(float(amplitude), float(omega), float(phase),
                                        float(offset)))
    model.addController(controller)
    state = model.initSystem()
    state.setQ(opensim.Vector(list(map(float, q0))))
    state.setU(opensim.Vector(list(map(float, qd0))))
    manager = opensim.Manager(model)
    manager.setIntegratorAccuracy(accuracy)
    manager.initialize(state)
    out = []
    for t in times_s:
        state = manager.integrate(float(t))
        out.append([state.getQ().get(k) for k in range(state.getNQ())])
    return np.array(out)
