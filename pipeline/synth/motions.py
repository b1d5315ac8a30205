"""Prescribed smooth motions of the demo tasks (coordinates in rad / m over time).

Every task is built from minimum-jerk cycles ``s(tau) = 64 tau^3 (1 - tau)^3`` (0 -> 1 -> 0 with
zero velocity and acceleration at both ends), so joint moments, and hence excitations, are
continuous.
Cycles last 1.6-3 s: the motion's content lies well below the 6 Hz low-pass that the pipeline
applies to markers, forces and coordinates, and below the 5 Hz EMG envelope filter.

A motion is a function ``t -> {coordinate: value}``; speeds and accelerations are taken with a
five-point central difference of that function at ``h = 1 ms`` (truncation ~h^4, round-off
~1e-10 rad/s^2), which also covers the leg's pelvis translations, which come from the model's
geometry (feet fixed to the floor) rather than from a formula.

Arm tasks (``demo-arm``: shoulder_elev, shoulder_rot, elbow_flex): shoulder abduction (elevation
cycles), shoulder rotation cycles with the arm elevated and the elbow flexed (gravity loads the
rotation), elbow flexion cycles. Leg task (``demo-leg``): symmetric squats with each foot flat on
its own force plate; ankle dorsiflexion and knee flexion follow the squat depth, the pelvis and
trunk lean forward so that the centre of mass stays over the feet (moving a few cm forward at
depth, so that the ankle moment varies), and the pelvis translations keep both calcanei fixed on
the floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.synth.kinematics import ModelEvaluator, Motion

DEG = math.pi / 180.0
Trajectory = Callable[[np.ndarray], dict[str, np.ndarray]]
_STEP_S = 1e-3


def min_jerk_cycles(time_s: np.ndarray, *, start_s: float, period_s: float,
                    n_cycles: int) -> np.ndarray:
    """``n_cycles`` back-to-back 0 -> 1 -> 0 minimum-jerk cycles starting at ``start_s``."""
    tau = (np.asarray(time_s) - start_s) / period_s
    active = (tau > 0.0) & (tau < n_cycles)
    frac = np.where(active, tau - np.floor(tau), 0.0)
    return np.where(active, 64.0 * frac**3 * (1.0 - frac) ** 3, 0.0)


def differentiate(trajectory: Trajectory, time_s: np.ndarray) -> Motion:
    """Sample ``trajectory`` and its first two time derivatives (five-point stencils)."""
    h = _STEP_S
    values = [trajectory(time_s + k * h) for k in (-2, -1, 0, 1, 2)]
    names = values[2].keys()
    q = {n: np.asarray(values[2][n], dtype=float) for n in names}
    qdot = {n: (values[0][n] - 8 * values[1][n] + 8 * values[3][n] - values[4][n]) / (12 * h)
            for n in names}
    qddot = {n: (-values[0][n] + 16 * values[1][n] - 30 * values[2][n] + 16 * values[3][n]
                 - values[4][n]) / (12 * h * h) for n in names}
    return Motion(np.asarray(time_s, dtype=float), q, qdot, qddot)


@dataclass(frozen=True)
class Cycles:
    """A coordinate moving ``base + amplitude * s(t)`` (rad) with minimum-jerk cycles."""

    base_rad: float
    amplitude_rad: float = 0.0
    period_s: float = 2.0
    phase_s: float = 0.0


@dataclass(frozen=True)
class ArmTask:
    """One arm trial: a :class:`Cycles` per coordinate (missing coordinates stay at 0)."""

    name: str
    coordinates: Mapping[str, Cycles]


def arm_trajectory(task: ArmTask, *, duration_s: float, rest_s: float = 0.4) -> Trajectory:
    """Trajectory of an arm task: cycles fill ``duration_s`` minus ``rest_s`` at each end."""

    def trajectory(t: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, spec in task.coordinates.items():
            start = rest_s + spec.phase_s
            n_cycles = max(int((duration_s - rest_s - start) // spec.period_s), 0)
            s = min_jerk_cycles(t, start_s=start, period_s=spec.period_s, n_cycles=n_cycles)
            out[name] = spec.base_rad + spec.amplitude_rad * s
        return out

    return trajectory


def static_trajectory(pose: Mapping[str, float]) -> Trajectory:
    """A motionless pose."""

    def trajectory(t: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.full(np.shape(t), float(v)) for name, v in pose.items()}

    return trajectory


@dataclass(frozen=True)
class Squat:
    """A squat: depth cycles scale knee flexion, ankle dorsiflexion and the forward lean."""

    name: str
    knee_flexion_rad: float = 70 * DEG
    ankle_dorsiflexion_rad: float = 22 * DEG
    period_s: float = 2.4
    lumbar_flexion_rad: float = 10 * DEG
    #: how far forward the centre of mass moves at full depth (m): the ankle plantarflexors
    #: then work harder at depth, so the ankle moment varies instead of staying near constant
    com_shift_m: float = 0.0


class SquatBuilder:
    """Build squat trajectories for ``demo-leg`` with both calcanei fixed on the floor (y = 0).

    Flat feet: pelvis_tilt + hip + knee + ankle = 0 on each side (all pin axes are +z). Standing,
    the whole body leans forward about the ankles (dorsiflexion ``d``, pelvis_tilt ``-d``) so that
    the centre of mass is ``com_ahead_of_ankle_m`` in front of the ankle, as in quiet standing.
    Squatting, pelvis_tilt = ``-d + lean_gain * depth``, with the gain fitted so that the centre
    of mass is at the same place at full depth; hip flexion closes the flat-foot equation; pelvis
    translations put the calcaneus origins back at their standing location.
    """

    def __init__(self, evaluator: ModelEvaluator, *, com_ahead_of_ankle_m: float = 0.04) -> None:
        self.evaluator = evaluator
        self.com_ahead_m = com_ahead_of_ankle_m
        zero = {name: 0.0 for name in evaluator.coordinate_names}
        self.lean_rad = self._solve(lambda d: self._com_error(self._static_angles(d)),
                                    -20 * DEG, 20 * DEG)
        self.standing = self._placed(self._static_angles(self.lean_rad), zero)
        self.foot_origin = evaluator.pose_point(self.standing, "calcn_r")

    def _static_angles(self, lean: float) -> dict[str, float]:
        out = {"pelvis_tilt": -lean}
        for side in ("r", "l"):
            out[f"ankle_angle_{side}"] = lean
        return out

    def _placed(self, angles: Mapping[str, float], base: Mapping[str, float]) -> dict[str, float]:
        """``angles`` with pelvis translations that put the right calcaneus origin at y = 0."""
        pose = {**base, **angles, "pelvis_tx": 0.0, "pelvis_ty": 0.0}
        calcn = self.evaluator.pose_point(pose, "calcn_r")
        pose["pelvis_ty"] = -calcn[1]
        return pose

    def _com_error(self, angles: Mapping[str, float]) -> float:
        ev = self.evaluator
        pose = {name: 0.0 for name in ev.coordinate_names}
        pose.update(angles)
        com = ev.pose_com(pose)
        ankle = ev.pose_joint_centre(pose, "ankle_r")
        return float(com[0] - ankle[0] - self.com_ahead_m)

    @staticmethod
    def _solve(func: Callable[[float], float], low: float, high: float) -> float:
        """Bisection for a root of ``func`` in [low, high]."""
        f_low = func(low)
        if np.sign(f_low) == np.sign(func(high)):
            raise ValueError("no balanced posture in the search interval")
        for _ in range(50):
            mid = 0.5 * (low + high)
            f_mid = func(mid)
            if np.sign(f_mid) == np.sign(f_low):
                low, f_low = mid, f_mid
            else:
                high = mid
        return 0.5 * (low + high)

    def _angles(self, depth: np.ndarray, squat: Squat, lean_gain: float) -> dict[str, np.ndarray]:
        knee = -squat.knee_flexion_rad * depth
        ankle = self.lean_rad + squat.ankle_dorsiflexion_rad * depth
        tilt = -self.lean_rad + lean_gain * depth
        hip = -(tilt + knee + ankle)
        out = {"pelvis_tilt": tilt, "lumbar_extension": -squat.lumbar_flexion_rad * depth}
        for side in ("r", "l"):
            out[f"hip_flexion_{side}"] = hip
            out[f"knee_angle_{side}"] = knee
            out[f"ankle_angle_{side}"] = ankle
        return out

    def _lean_gain(self, squat: Squat) -> float:
        """Pelvis tilt per unit depth that puts the centre of mass ``squat.com_shift_m`` ahead of
        its standing place at full depth."""

        def error(gain: float) -> float:
            angles = self._angles(np.array([1.0]), squat, gain)
            return self._com_error({k: float(v[0]) for k, v in angles.items()}) - squat.com_shift_m

        return self._solve(error, -80 * DEG, 10 * DEG)

    def trajectory(self, squat: Squat, *, duration_s: float, rest_s: float = 0.4) -> Trajectory:
        gain = self._lean_gain(squat)
        n_cycles = max(int((duration_s - 2 * rest_s) // squat.period_s), 1)
        base = dict(self.standing)

        def trajectory(t: np.ndarray) -> dict[str, np.ndarray]:
            t = np.atleast_1d(t)
            depth = min_jerk_cycles(t, start_s=rest_s, period_s=squat.period_s,
                                    n_cycles=n_cycles)
            angles = self._angles(depth, squat, gain)
            tx = np.zeros_like(t)
            ty = np.zeros_like(t)
            for i in range(t.shape[0]):
                pose = {**base, **{k: float(v[i]) for k, v in angles.items()},
                        "pelvis_tx": 0.0, "pelvis_ty": 0.0}
                foot = self.evaluator.pose_point(pose, "calcn_r")
                tx[i] = self.foot_origin[0] - foot[0]
                ty[i] = self.foot_origin[1] - foot[1]
            return {**angles, "pelvis_tx": tx, "pelvis_ty": ty}

        return trajectory
