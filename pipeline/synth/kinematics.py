"""OpenSim evaluations along a prescribed motion: inverse dynamics, markers, MTU geometry.

The motion is given as coordinate values, speeds and accelerations (SI, ``(time,)`` arrays per
coordinate name), usually analytic derivatives of smooth prescribed trajectories. Everything here
works on an initialised model; every OpenSim object created is kept referenced by the caller's
frame until the end of the function (temporaries handed to OpenSim can be freed too early).

Inverse dynamics uses ``opensim.InverseDynamicsSolver`` on the model *as built*: the demo models
have no CoordinateLimitForces, springs or other passive forces, and muscles are excluded from the
solver's force set (the solver applies every enabled force; muscles are disabled first), so the
generalized forces are purely inertial + gravitational (+ the external loads given).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import opensim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motion:
    """Coordinate trajectories on one time base: ``q``, ``qdot``, ``qddot`` map name -> (time,)."""

    time_s: np.ndarray
    q: dict[str, np.ndarray]
    qdot: dict[str, np.ndarray]
    qddot: dict[str, np.ndarray]

    @property
    def n_frames(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(frozen=True)
class PointLoad:
    """An external load on ``body``: force (N) at a point (m) plus a torque (N m), ground frame,
    each ``(time, 3)``."""

    body: str
    force_n: np.ndarray
    point_m: np.ndarray
    torque_nm: np.ndarray


class ModelEvaluator:
    """Set an initialised OpenSim model to the frames of a :class:`Motion` and query it."""

    def __init__(self, model: opensim.Model) -> None:
        self.model = model
        self.state = model.initSystem()
        self.coords = model.getCoordinateSet()
        self.coordinate_names = [self.coords.get(i).getName() for i in range(self.coords.getSize())]
        self._mobility_index = self._mobility_indices()

    def _mobility_indices(self) -> dict[str, int]:
        """Index of each coordinate in the state's u vector (the order of ID's output)."""
        state = self.state
        saved = opensim.Vector(state.getU())
        out = {}
        for name in self.coordinate_names:
            state.setU(opensim.Vector(state.getNU(), 0.0))
            self.coords.get(name).setSpeedValue(state, 1.0)
            u = state.getU()
            out[name] = next(i for i in range(state.getNU()) if u.get(i) == 1.0)
        state.setU(saved)
        return out

    def set_frame(self, motion: Motion, frame: int, *, speeds: bool = True) -> None:
        for name, values in motion.q.items():
            self.coords.get(name).setValue(self.state, float(values[frame]), False)
            if speeds:
                self.coords.get(name).setSpeedValue(self.state, float(motion.qdot[name][frame]))

    def udot(self, motion: Motion, frame: int) -> opensim.Vector:
        udot = opensim.Vector(self.state.getNU(), 0.0)
        for name, values in motion.qddot.items():
            udot.set(self._mobility_index[name], float(values[frame]))
        return udot

    def inverse_dynamics(self, motion: Motion, loads: Sequence[PointLoad] = ()
                         ) -> dict[str, np.ndarray]:
        """Generalized forces (N m or N) per coordinate over the motion, without muscles.

        ``loads`` are external wrenches (ground frame) applied to bodies at points, as an
        ExternalLoads file would apply them.
        """
        model = self.model
        forces = model.updForceSet()
        enabled = [forces.get(i).get_appliesForce() for i in range(forces.getSize())]
        for i in range(forces.getSize()):
            forces.get(i).set_appliesForce(False)
        try:
            state = model.initSystem()
            self.state = state
            solver = opensim.InverseDynamicsSolver(model)
            out = {name: np.zeros(motion.n_frames) for name in self.coordinate_names}
            for frame in range(motion.n_frames):
                state.setTime(float(motion.time_s[frame]))
                self.set_frame(motion, frame)
                model.realizeVelocity(state)
                udot = self.udot(motion, frame)
                if loads:
                    # With explicit loads the solver ignores the model's own forces: pass
                    # gravity in too (the only other force once the muscles are disabled).
                    model.realizePosition(state)
                    body = self._body_forces(loads, frame)
                    tau = solver.solve(state, udot, opensim.Vector(state.getNU(), 0.0), body)
                else:
                    tau = solver.solve(state, udot)
                for name, index in self._mobility_index.items():
                    out[name][frame] = tau.get(index)
        finally:
            for i, flag in enumerate(enabled):
                forces.get(i).set_appliesForce(flag)
            self.state = model.initSystem()
        return out

    def _body_forces(self, loads: Sequence[PointLoad], frame: int
                     ) -> opensim.VectorOfSpatialVec:
        """Gravity plus the loads, as mobilized-body spatial forces (torque, force about the
        body origin, ground frame)."""
        bodies = self.model.getBodySet()
        zero = opensim.SpatialVec(opensim.Vec3(0.0), opensim.Vec3(0.0))
        forces = opensim.VectorOfSpatialVec(bodies.getSize() + 1, zero)
        g = self.model.getGravity()
        gravity = np.array([g.get(0), g.get(1), g.get(2)])
        weights = []
        for i in range(bodies.getSize()):
            body = bodies.get(i)
            com = body.findStationLocationInGround(self.state, body.getMassCenter())
            weights.append(PointLoad(body.getName(), (body.getMass() * gravity)[None],
                                    np.array([[com.get(0), com.get(1), com.get(2)]]),
                                    np.zeros((1, 3))))
        for load, row in [(w, 0) for w in weights] + [(ld, frame) for ld in loads]:
            body = self.model.getBodySet().get(load.body)
            index = body.getMobilizedBodyIndex()
            origin = body.getPositionInGround(self.state)
            r = load.point_m[row] - np.array([origin.get(0), origin.get(1), origin.get(2)])
            f = load.force_n[row]
            torque = np.cross(r, f) + load.torque_nm[row]
            old = forces.get(index)
            t_old, f_old = old.get(0), old.get(1)
            forces.set(index, opensim.SpatialVec(
                opensim.Vec3(*(torque + [t_old.get(i) for i in range(3)])),
                opensim.Vec3(*(f + [f_old.get(i) for i in range(3)]))))
        return forces

    def markers(self, motion: Motion, names: Sequence[str] | None = None
                ) -> dict[str, np.ndarray]:
        """Marker positions in ground (m), ``(time, 3)`` per marker."""
        marker_set = self.model.getMarkerSet()
        names = list(names) if names is not None else [
            marker_set.get(i).getName() for i in range(marker_set.getSize())]
        out = {name: np.zeros((motion.n_frames, 3)) for name in names}
        for frame in range(motion.n_frames):
            self.set_frame(motion, frame, speeds=False)
            self.model.realizePosition(self.state)
            for name in names:
                loc = marker_set.get(name).getLocationInGround(self.state)
                out[name][frame] = [loc.get(0), loc.get(1), loc.get(2)]
        return out

    def mtu_geometry(self, motion: Motion, muscles: Sequence[str], dofs: Sequence[str]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """MTU lengths ``(muscle, time)`` (m) and moment arms ``(muscle, dof, time)`` (m)."""
        muscle_set = self.model.getMuscles()
        handles = [muscle_set.get(name) for name in muscles]
        coord_handles = [self.coords.get(name) for name in dofs]
        lengths = np.zeros((len(muscles), motion.n_frames))
        arms = np.zeros((len(muscles), len(dofs), motion.n_frames))
        for frame in range(motion.n_frames):
            self.set_frame(motion, frame, speeds=False)
            self.model.realizePosition(self.state)
            for m, muscle in enumerate(handles):
                lengths[m, frame] = muscle.getLength(self.state)
                path = muscle.getGeometryPath()
                for d, coord in enumerate(coord_handles):
                    arms[m, d, frame] = path.computeMomentArm(self.state, coord)
        return lengths, arms

    def body_origin(self, motion: Motion, body: str) -> np.ndarray:
        """Origin of ``body`` in ground (m), ``(time, 3)``."""
        frame_obj = self.model.getBodySet().get(body)
        out = np.zeros((motion.n_frames, 3))
        for frame in range(motion.n_frames):
            self.set_frame(motion, frame, speeds=False)
            self.model.realizePosition(self.state)
            pos = frame_obj.getPositionInGround(self.state)
            out[frame] = [pos.get(0), pos.get(1), pos.get(2)]
        return out

    def pose_point(self, pose: Mapping[str, float], body: str) -> np.ndarray:
        """Origin of ``body`` in ground at a single pose (unlisted coordinates keep their value)."""
        for name, value in pose.items():
            self.coords.get(name).setValue(self.state, float(value), False)
        self.model.realizePosition(self.state)
        pos = self.model.getBodySet().get(body).getPositionInGround(self.state)
        return np.array([pos.get(0), pos.get(1), pos.get(2)])

    def pose_joint_centre(self, pose: Mapping[str, float], joint: str) -> np.ndarray:
        """Centre of ``joint`` (its child frame's origin) in ground at a single pose."""
        for name, value in pose.items():
            self.coords.get(name).setValue(self.state, float(value), False)
        self.model.realizePosition(self.state)
        pos = self.model.getJointSet().get(joint).getChildFrame().getPositionInGround(self.state)
        return np.array([pos.get(0), pos.get(1), pos.get(2)])

    def pose_com(self, pose: Mapping[str, float]) -> np.ndarray:
        """Whole-body centre of mass in ground at a single pose."""
        for name, value in pose.items():
            self.coords.get(name).setValue(self.state, float(value), False)
        self.model.realizePosition(self.state)
        com = self.model.calcMassCenterPosition(self.state)
        return np.array([com.get(0), com.get(1), com.get(2)])

    def total_mass_kg(self) -> float:
        return float(self.model.getTotalMass(self.state))
