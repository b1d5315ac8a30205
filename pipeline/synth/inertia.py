"""Hidden true segment inertial parameters of a demo subject.

The subject's true model is the plan's generic model with each moving segment's mass, centre of
mass and inertia perturbed (one draw per segment, from a generator seeded by the study seed):

* mass x (1 + N(0, 10 %)), clipped to [0.7, 1.3];
* principal moments of inertia (about the centre of mass) x (1 + N(0, 10 %)) each, clipped to
  [0.7, 1.3], and the principal axes turned by a small random rotation (N(0, 5 deg) about each
  body axis), so the true inertia has products; a draw whose moments break the triangle inequality
  (I1 + I2 >= I3, which every rigid body meets) is drawn again;
* centre of mass shifted by N(0, 10 %) of the segment's distance scale along each body axis (the
  larger of the centre of mass's distance from the body origin and the radius of gyration).

Left exactly as they are: the bodies of known inertia (``known_bodies``: the dumbbell, the motion
method's anchor) and bodies welded to ground (the arm's thorax): no coordinate moves them, so their
inertia enters no equation of motion, and perturbing them would only change the model's total mass.

Kinematics, markers and muscle geometry do not depend on inertia; the true model drives the
inverse dynamics, the ground reactions and the muscle solve (:mod:`pipeline.synth.subject`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import opensim

MASS_SD = 0.10
INERTIA_SD = 0.10
COM_SD = 0.10
AXES_SD_RAD = np.deg2rad(5.0)
FACTOR_RANGE = (0.7, 1.3)
MAX_DRAWS = 100


@dataclass(frozen=True)
class BodyInertia:
    """One body's mass (kg), centre of mass (m, body frame) and inertia about the centre of mass
    (kg m^2, body axes: xx yy zz xy xz yz, as OpenSim's Body holds it)."""

    mass_kg: float
    com_m: tuple[float, float, float]
    inertia_kg_m2: tuple[float, float, float, float, float, float]

    def matrix(self) -> np.ndarray:
        xx, yy, zz, xy, xz, yz = self.inertia_kg_m2
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])

    def as_json(self) -> dict[str, float | list[float]]:
        return {"mass_kg": float(self.mass_kg), "mass_center_m": [float(v) for v in self.com_m],
                "inertia_kg_m2": [float(v) for v in self.inertia_kg_m2]}


def physically_valid(body: BodyInertia) -> bool:
    """Positive mass and an inertia a rigid body can have: positive definite, and its principal
    moments meet the triangle inequality."""
    eig = np.linalg.eigvalsh(body.matrix())
    return bool(body.mass_kg > 0 and eig[0] > 0 and eig[0] + eig[1] >= eig[2] * (1 - 1e-12))


def read_bodies(model: opensim.Model) -> dict[str, BodyInertia]:
    """Every body's inertial properties as the model holds them."""
    out = {}
    bodies = model.getBodySet()
    for i in range(bodies.getSize()):
        body = bodies.get(i)
        inertia = body.getInertia()
        moments, products = inertia.getMoments(), inertia.getProducts()
        com = body.getMassCenter()
        out[body.getName()] = BodyInertia(
            float(body.getMass()), (com.get(0), com.get(1), com.get(2)),
            (moments.get(0), moments.get(1), moments.get(2),
             products.get(0), products.get(1), products.get(2)))
    return out


def welded_to_ground(model: opensim.Model) -> tuple[str, ...]:
    """Bodies joined to ground through joints without coordinates only."""
    joints = model.getJointSet()
    parent = {}
    for i in range(joints.getSize()):
        joint = joints.get(i)
        child = joint.getChildFrame().findBaseFrame().getName()
        parent[child] = (joint.getParentFrame().findBaseFrame().getName(),
                         joint.numCoordinates() == 0)
    ground = model.getGround().getName()
    out = []
    for body in read_bodies(model):
        name, fixed = body, True
        while name != ground and fixed and name in parent:
            name, weld = parent[name]
            fixed = weld
        if fixed and name == ground:
            out.append(body)
    return tuple(out)


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Body-fixed x-y-z rotation matrix of three small angles (rad)."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def perturbed_body(generic: BodyInertia, rng: np.random.Generator) -> BodyInertia:
    """One segment's hidden true inertial parameters (see the module docstring)."""
    low, high = FACTOR_RANGE
    mass = generic.mass_kg * float(np.clip(1.0 + rng.normal(0.0, MASS_SD), low, high))
    eig, axes = np.linalg.eigh(generic.matrix())
    for _ in range(MAX_DRAWS):
        moments = eig * np.clip(1.0 + rng.normal(0.0, INERTIA_SD, 3), low, high)
        ordered = np.sort(moments)
        if ordered[0] + ordered[1] >= ordered[2]:
            break
    else:
        raise RuntimeError("no inertia draw met the triangle inequality: the generic body is "
                           "too close to a rod")
    turned = axes @ _rotation(rng.normal(0.0, AXES_SD_RAD, 3))
    matrix = turned @ np.diag(moments) @ turned.T
    com = np.asarray(generic.com_m, dtype=float)
    gyration = float(np.sqrt(np.trace(generic.matrix()) / (2.0 * generic.mass_kg)))
    scale = max(float(np.linalg.norm(com)), gyration)
    com = com + rng.normal(0.0, COM_SD * scale, 3)
    true = BodyInertia(mass, (float(com[0]), float(com[1]), float(com[2])),
                       (float(matrix[0, 0]), float(matrix[1, 1]), float(matrix[2, 2]),
                        float(matrix[0, 1]), float(matrix[0, 2]), float(matrix[1, 2])))
    if not physically_valid(true):  # cannot happen with the draws above; keep it checked
        raise RuntimeError(f"perturbed inertia {true} is not physically valid")
    return true


def perturbed_bodies(generic: Mapping[str, BodyInertia], rng: np.random.Generator, *,
                     keep: Sequence[str] = ()) -> dict[str, BodyInertia]:
    """Every body of ``generic`` perturbed, except ``keep`` (returned as they are)."""
    return {name: body if name in keep else perturbed_body(body, rng)
            for name, body in generic.items()}


def apply_bodies(model: opensim.Model, bodies: Mapping[str, BodyInertia]) -> None:
    """Set the bodies' inertial properties in ``model`` (call ``initSystem`` afterwards)."""
    body_set = model.updBodySet()
    for name, values in bodies.items():
        body = body_set.get(name)
        body.setMass(float(values.mass_kg))
        body.setMassCenter(opensim.Vec3(*values.com_m))
        body.setInertia(opensim.Inertia(*values.inertia_kg_m2))


def true_model(model_name: str, *, rng: np.random.Generator, known_bodies: Sequence[str] = ()
               ) -> tuple[opensim.Model, dict[str, BodyInertia], dict[str, BodyInertia]]:
    """The subject's true model: the built-in ``model_name`` with its moving segments perturbed.

    Returns ``(model, true, generic)``; ``true`` and ``generic`` map every body to its inertial
    parameters.
    """
    from pipeline.osim.models import build_model

    model = build_model(model_name)
    generic = read_bodies(model)
    keep = (*known_bodies, *welded_to_ground(model))
    true = perturbed_bodies(generic, rng, keep=keep)
    apply_bodies(model, true)
    return model, true, generic
