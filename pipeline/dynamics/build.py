"""Read an OpenSim model's skeleton (bodies, joints, mass properties) into a torch ``Skeleton``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from pipeline.dynamics import functions
from pipeline.dynamics.skeleton import AxisMotion, JointSpec, Skeleton
from pipeline.errors import ModelError, describe

log = logging.getLogger(__name__)

_IDENTITY = functions.Polynomial((1.0, 0.0))
_X, _Y, _Z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
# Joints whose mobilizer is a fixed sequence of body-fixed rotations then translations along F
# axes with u = dq/dt: (rotation axes, translation axes), each axis paired with its coordinate.
_FIXED_JOINTS = {
    "WeldJoint": ((), ()),
    "PinJoint": (((_Z, 0),), ()),
    "SliderJoint": ((), ((_X, 0),)),
    "PlanarJoint": (((_Z, 0),), ((_X, 1), (_Y, 2))),
    "UniversalJoint": (((_X, 0), (_Y, 1)), ()),
    "GimbalJoint": (((_X, 0), (_Y, 1), (_Z, 2)), ()),
}
SUPPORTED_JOINTS = ("CustomJoint", *_FIXED_JOINTS)


def _vec(v) -> np.ndarray:
    return np.array([v.get(i) for i in range(3)], dtype=float)


def _transform(frame) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation and origin of a physical frame in its base frame (body or ground)."""
    x = frame.findTransformInBaseFrame()
    mat = x.R().asMat33()
    rot = np.array([[mat.get(i, j) for j in range(3)] for i in range(3)])
    return torch.tensor(rot, dtype=torch.float64), torch.tensor(_vec(x.p()), dtype=torch.float64)


def inertial_parameters(mass: float, mass_center, inertia_moments, inertia_products) -> np.ndarray:
    """pi (10,) from OpenSim's mass, centre of mass and inertia about the centre of mass."""
    c = np.asarray(mass_center, dtype=float)
    xx, yy, zz = inertia_moments
    xy, xz, yz = inertia_products
    about_com = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]], dtype=float)
    about_origin = about_com + mass * (c @ c * np.eye(3) - np.outer(c, c))
    return np.array([mass, *(mass * c), about_origin[0, 0], about_origin[1, 1], about_origin[2, 2],
                     about_origin[0, 1], about_origin[0, 2], about_origin[1, 2]])


def opensim_mass_properties(pi) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(mass, centre of mass, inertia moments, inertia products about the centre of mass)."""
    pi = np.asarray(pi, dtype=float)
    mass = float(pi[0])
    c = pi[1:4] / mass if mass != 0 else np.zeros(3)
    about_origin = np.array([[pi[4], pi[7], pi[8]], [pi[7], pi[5], pi[9]], [pi[8], pi[9], pi[6]]])
    about_com = about_origin - mass * (c @ c * np.eye(3) - np.outer(c, c))
    return (mass, c, np.array([about_com[0, 0], about_com[1, 1], about_com[2, 2]]),
            np.array([about_com[0, 1], about_com[0, 2], about_com[1, 2]]))


def coordinate_order(model, state) -> list[str]:
    """Coordinate names in OpenSim's mobility (state Q) order."""
    import opensim

    coords = list(model.getCoordinateSet())
    q0 = [state.getQ().get(i) for i in range(state.getNQ())]
    before = [c.getValue(state) for c in coords]
    names = []
    for i in range(len(q0)):
        state.setQ(opensim.Vector([q + 0.25 * (k == i) for k, q in enumerate(q0)]))
        moved = [c.getName() for c, v in zip(coords, before, strict=True)
                 if c.getValue(state) != v]
        if len(moved) != 1:
            raise ModelError(describe(None, f"generalized coordinate {i} moves coordinates "
                             f"{moved}", "use joints with one Q per coordinate"))
        names.append(moved[0])
    state.setQ(opensim.Vector(q0))
    return names


def _custom_axes(joint, index):
    import opensim

    transform = opensim.CustomJoint.safeDownCast(joint).getSpatialTransform()
    rotations, translations = [], []
    for i in range(6):
        axis = transform.getTransformAxis(i)
        names = axis.getCoordinateNamesInArray()
        if names.getSize() > 1:
            raise ModelError(describe(None, f"joint '{joint.getName()}' moves axis "
                             f"'{axis.getName()}' by a function of {names.getSize()} coordinates",
                             "use functions of one coordinate"))
        coordinate = index[names.get(0)] if names.getSize() == 1 else None
        function = functions.from_opensim(axis.get_function())
        direction = _vec(axis.getAxis())
        direction = direction / np.linalg.norm(direction)  # Simbody uses unit axes
        motion = AxisMotion(tuple(direction), coordinate, function)
        (rotations if i < 3 else translations).append(motion)
    return rotations, translations


def skeleton_from_model(model, *, source: str = "") -> Skeleton:
    """A torch Skeleton of an OpenSim model (the model is initialised here)."""
    state = model.initSystem()
    where = source or model.getName()
    if state.getNQ() != state.getNU():
        raise ModelError(describe(where, "the model has quaternion coordinates (a ball or free "
                         "joint)", "use CustomJoint, PinJoint, SliderJoint, PlanarJoint, "
                         "UniversalJoint, GimbalJoint or WeldJoint"))
    coordinates = coordinate_order(model, state)
    index = {name: i for i, name in enumerate(coordinates)}
    bodies = [b.getName() for b in model.getBodySet()]
    body_index = {name: i for i, name in enumerate(bodies)}
    ground = model.getGround().getName()
    pending = list(model.getJointSet())
    placed = {ground}
    joints = []
    while pending:
        progress = False
        for joint in list(pending):
            parent = joint.getParentFrame().findBaseFrame().getName()
            child = joint.getChildFrame().findBaseFrame().getName()
            if parent not in placed:
                continue
            kind = joint.getConcreteClassName()
            names = [joint.get_coordinates(i).getName() for i in range(joint.numCoordinates())]
            function_based: tuple[int, ...] = ()
            if kind == "CustomJoint":
                rotations, translations = _custom_axes(joint, index)
                function_based = tuple(index[name] for name in names)
            elif kind in _FIXED_JOINTS:
                rot_axes, tr_axes = _FIXED_JOINTS[kind]
                rotations = [AxisMotion(a, index[names[k]], _IDENTITY) for a, k in rot_axes]
                translations = [AxisMotion(a, index[names[k]], _IDENTITY) for a, k in tr_axes]
            else:
                raise ModelError(describe(where, f"joint '{joint.getName()}' is a {kind}, which "
                                 "the torch skeleton does not support", "use one of "
                                 + ", ".join(SUPPORTED_JOINTS)))
            if child in placed:
                raise ModelError(describe(where, f"body '{child}' is the child of two joints (a "
                                 "closed loop)", "model loops with constraints"))
            r_pf, p_pf = _transform(joint.getParentFrame())
            r_bm, p_bm = _transform(joint.getChildFrame())
            joints.append(JointSpec(joint.getName(), body_index.get(parent, -1), body_index[child],
                                    r_pf, p_pf, r_bm, p_bm, tuple(rotations), tuple(translations),
                                    function_based))
            placed.add(child)
            pending.remove(joint)
            progress = True
        if not progress:
            unplaced = ", ".join(j.getName() for j in pending)
            raise ModelError(describe(where, f"joints {unplaced} do not connect to ground",
                             "check the joints' parent frames"))
    pis = []
    for body in model.getBodySet():
        inertia = body.getInertia()
        pis.append(inertial_parameters(body.getMass(), _vec(body.getMassCenter()),
                                       _vec(inertia.getMoments()), _vec(inertia.getProducts())))
    ranges, rotational = [], []
    for name in coordinates:
        coord = model.getCoordinateSet().get(name)
        ranges.append((coord.getRangeMin(), coord.getRangeMax()))
        rotational.append(coord.getMotionType() == 1)  # Coordinate::Rotational
    constraints = tuple(c.getName() for c in model.getConstraintSet() if c.isEnforced(state))
    constraints += tuple(f"locked coordinate {c.getName()}" for c in model.getCoordinateSet()
                         if c.getDefaultLocked())
    return Skeleton(coordinates=tuple(coordinates), bodies=tuple(bodies), joints=tuple(joints),
                    gravity=torch.tensor(_vec(model.getGravity()), dtype=torch.float64),
                    inertial=torch.tensor(np.array(pis), dtype=torch.float64), source=where,
                    coordinate_ranges=torch.tensor(ranges, dtype=torch.float64),
                    constraints=constraints, rotational=tuple(rotational))


def load_skeleton(path: str | Path) -> Skeleton:
    """Read a ``.osim`` file into a Skeleton; a clear ModelError when it cannot."""
    import opensim

    path = Path(path)
    if not path.is_file():
        raise ModelError(describe(path, "model file not found", "give the path of a .osim file"))
    try:
        model = opensim.Model(str(path))
    except Exception as exc:  # noqa: BLE001 (OpenSim raises RuntimeError subclasses)
        raise ModelError(describe(path, f"OpenSim cannot read it ({exc})",
                                  "check the file is an OpenSim 4 model")) from None
    return skeleton_from_model(model, source=str(path))


def read_motion(path: str | Path, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Times and coordinates (n_frames, n_coordinates; rad and m) of an IK ``.mot``/``.sto``.

    Columns are named by coordinate or by state path (``/jointset/<joint>/<coordinate>/value``);
    coordinates the file lacks stay at zero.
    """
    from pipeline.io.opensim_files import read_sto

    table = read_sto(path, error_cls=ModelError, fix="give the IK motion of this model",
                     state_values=True)
    by_name = {label: k for k, label in enumerate(table.labels)}
    q = np.zeros((len(table.time_s), skeleton.n_coordinates))
    found = 0
    for i, name in enumerate(skeleton.coordinates):
        if name in by_name:
            found += 1
            values = table.data[:, by_name[name]]
            q[:, i] = np.deg2rad(values) if table.in_degrees and skeleton.rotational[i] else values
    if found == 0:
        raise ModelError(describe(path, "no column names a coordinate of the model",
                                  "give the IK motion of this model"))
    return table.time_s, q
