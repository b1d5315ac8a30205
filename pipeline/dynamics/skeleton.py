"""Rigid-body dynamics of an OpenSim skeleton in torch: kinematics, inverse dynamics, mass matrix.

The skeleton is read from an OpenSim model through the opensim API (:func:`from_opensim` in
:mod:`pipeline.dynamics.build`) and kept as plain tensors, so every function here is batched over
states, runs in float64 and is differentiable with respect to the states and the inertial
parameters.

Conventions (those of Simbody, so the results compare one to one with OpenSim):
- generalized coordinates in OpenSim's mobility order (``Skeleton.coordinates``), u = dq/dt;
- a joint moves its child frame M relative to its parent frame F by rotations about up to three
  axes, applied one after the other about axes carried along by the previous rotations, then a
  translation along axes fixed in F; each amount is a function of one coordinate;
- a body's inertial parameters are ``pi = (m, m cx, m cy, m cz, Ixx, Iyy, Izz, Ixy, Ixz, Iyz)``:
  mass, first mass moment and the inertia about the body origin, in the body frame. Joint torques
  are linear in them (``regressor``);
- external loads are one spatial force per body, ``(..., n_bodies, 6)``: the moment about the body
  origin then the force, both in ground axes (Simbody's applied body forces).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch

INERTIAL_NAMES = ("m", "mcx", "mcy", "mcz", "Ixx", "Iyy", "Izz", "Ixy", "Ixz", "Iyz")


@dataclass(frozen=True)
class AxisMotion:
    """One transform axis: a unit axis (in F for translations, carried along for rotations)
    moved by ``function(q[coordinate])``; ``coordinate`` is None for a fixed amount."""

    axis: tuple[float, float, float]
    coordinate: int | None
    function: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class JointSpec:
    name: str
    parent: int  # body index, -1 for ground
    child: int
    parent_rotation: torch.Tensor  # R_PF (3, 3): F axes in the parent body frame
    parent_offset: torch.Tensor  # F origin in the parent body frame
    child_rotation: torch.Tensor  # R_BM
    child_offset: torch.Tensor  # M origin in the child body frame
    rotations: tuple[AxisMotion, ...]
    translations: tuple[AxisMotion, ...]
    # The joint's coordinates in its own order, when it is a Simbody FunctionBased mobilizer
    # (an OpenSim CustomJoint); empty for the other joint types.
    function_based: tuple[int, ...] = ()


@dataclass
class Skeleton:
    """An OpenSim skeleton as tensors (float64). Joints are ordered parents first."""

    coordinates: tuple[str, ...]
    bodies: tuple[str, ...]
    joints: tuple[JointSpec, ...]
    gravity: torch.Tensor  # (3,) m/s^2 in ground
    inertial: torch.Tensor  # (n_bodies, 10) the model's inertial parameters
    source: str = ""
    coordinate_ranges: torch.Tensor | None = None  # (n_coordinates, 2)
    constraints: tuple[str, ...] = ()  # enforced constraints (ignored by inverse dynamics)
    rotational: tuple[bool, ...] = ()  # per coordinate: an angle (rad), else a length (m)

    @property
    def n_coordinates(self) -> int:
        return len(self.coordinates)

    @property
    def n_bodies(self) -> int:
        return len(self.bodies)


@dataclass
class Kinematics:
    """Per body, in ground: rotation, origin, angular/linear velocity and acceleration of the
    origin (accelerations include minus gravity), and each joint's motion columns."""

    rotation: list[torch.Tensor]
    origin: list[torch.Tensor]
    angular_velocity: list[torch.Tensor]
    velocity: list[torch.Tensor]
    angular_acceleration: list[torch.Tensor]
    acceleration: list[torch.Tensor]
    joint_origin: list[torch.Tensor]  # M origin in ground, per joint
    joint_columns: list[dict[int, tuple[torch.Tensor, torch.Tensor]]]  # coord -> (ang, lin)


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                        torch.stack([-y, x, zero], -1)], -2)


def axis_rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) by ``angle`` (...) about the unit ``axis`` (3,)."""
    k = _skew(axis)
    return _rotation(k, k @ k, angle)


def _rotation(k: torch.Tensor, k2: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    return eye + s * k + (1 - c) * k2


_CONSTANTS: dict = {}


def _axis_constants(axis: tuple[float, float, float], dtype, device):
    """The axis, its cross-product matrix and that matrix squared, cached per dtype/device."""
    key = (axis, dtype, device)
    if key not in _CONSTANTS:
        a = torch.tensor(axis, dtype=dtype, device=device)
        k = _skew(a)
        _CONSTANTS[key] = (a, k, k @ k)
    return _CONSTANTS[key]


def _slots(n: int) -> list[torch.Tensor]:
    """``n`` body slots, each filled in tree order (parents first) before it is read."""
    return cast(list[torch.Tensor], [None] * n)


def _mv(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def _axis_terms(term: AxisMotion, q, qd, qdd):
    """Amount, rate, second derivative and d(rate)/d(qd) of one transform axis."""
    dtype, device = q.dtype, q.device
    if term.coordinate is None:
        value, _, _ = term.function(torch.zeros(q.shape[:-1], dtype=dtype, device=device))
        zero = torch.zeros_like(value)
        return value, zero, zero, None
    x = q[..., term.coordinate]
    value, slope, curvature = term.function(x)
    if qd is None:  # poses only
        return value, None, None, slope
    rate = slope * qd[..., term.coordinate]
    accel = curvature * qd[..., term.coordinate] ** 2 + slope * qdd[..., term.coordinate]
    return value, rate, accel, slope


def _carrying_velocities(joint: JointSpec, terms, axes, qd) -> list[torch.Tensor]:
    """The angular velocity that turns each rotation axis, as Simbody computes it.

    Physically, axis i turns with the velocity of the rotations before it. Simbody's
    FunctionBased mobilizer (every OpenSim CustomJoint) instead uses the velocity of the joint's
    mobilities before mobility i: mobility 0 for the second axis and all mobilities but the third
    for the third. Both agree when each coordinate drives one rotation in order; they differ when
    one coordinate drives several rotations (the Rajagopal walker knee). OpenSim's inverse and
    forward dynamics use Simbody's, so the skeleton does too.
    """
    zero = qd.new_zeros(*qd.shape[:-1], 3)
    exact, partial = [], zero
    for axis, (_, _, _, rate, _, _) in zip(axes, terms, strict=True):
        exact.append(partial)
        partial = partial + axis * rate[..., None]
    if not joint.function_based:
        return exact
    columns = []
    for coordinate in joint.function_based:
        column = zero
        for axis, (term, _, _, _, _, slope) in zip(axes, terms, strict=True):
            if term.coordinate == coordinate:
                column = column + axis * slope[..., None]
        columns.append(column * qd[..., coordinate, None])
    kept = [[0], [j for j in range(len(columns)) if j != 2]]
    out = [zero]
    for i in range(1, len(axes)):
        out.append(sum((columns[j] for j in kept[i - 1] if j < len(columns)), zero))
    return out


def joint_motion(joint: JointSpec, q, qd, qdd):
    """X_FM and the motion of M in F (in F axes), plus the joint's columns per coordinate
    (the motion is None when ``qd`` is None: poses and columns only)."""
    dtype, device = q.dtype, q.device
    batch = q.shape[:-1]
    rot = torch.eye(3, dtype=dtype, device=device).expand(*batch, 3, 3)
    omega = torch.zeros(*batch, 3, dtype=dtype, device=device)
    alpha = torch.zeros_like(omega)
    columns: dict[int, list[torch.Tensor]] = {}

    def add(coordinate, angular, linear):
        if coordinate in columns:
            columns[coordinate][0] = columns[coordinate][0] + angular
            columns[coordinate][1] = columns[coordinate][1] + linear
        else:
            columns[coordinate] = [angular, linear]

    terms = [(term, _axis_constants(term.axis, dtype, device),
              *_axis_terms(term, q, qd, qdd)) for term in joint.rotations]
    axes = []  # each rotation axis after the previous rotations, in F (Simbody's W columns)
    for _, (axis0, k, k2), value, *_ in terms:
        axes.append(_mv(rot, axis0))
        rot = rot @ _rotation(k, k2, value)
    if qd is None:  # poses and columns only
        pos = torch.zeros_like(omega)
        for (term, _, _, _, _, slope), axis in zip(terms, axes, strict=True):
            if slope is not None:
                add(term.coordinate, axis * slope[..., None], torch.zeros_like(axis))
        for term in joint.translations:
            axis = _axis_constants(term.axis, dtype, device)[0]
            value, _, _, slope = _axis_terms(term, q, None, None)
            pos = pos + axis * value[..., None]
            if slope is not None:
                add(term.coordinate, torch.zeros_like(pos), axis * slope[..., None])
        return rot, pos, None, None, None, None, columns
    carried = _carrying_velocities(joint, terms, axes, qd)
    for i, (term, _, _, rate, accel, slope) in enumerate(terms):
        axis = axes[i]
        alpha = (alpha + axis * accel[..., None]
                 + torch.cross(carried[i], axis, dim=-1) * rate[..., None])
        omega = omega + axis * rate[..., None]
        if slope is not None:
            add(term.coordinate, axis * slope[..., None], torch.zeros_like(axis))
    pos = torch.zeros_like(omega)
    vel = torch.zeros_like(omega)
    acc = torch.zeros_like(omega)
    for term in joint.translations:
        axis = _axis_constants(term.axis, dtype, device)[0]
        value, rate, accel, slope = _axis_terms(term, q, qd, qdd)
        pos = pos + axis * value[..., None]
        vel = vel + axis * rate[..., None]
        acc = acc + axis * accel[..., None]
        if slope is not None:
            add(term.coordinate, torch.zeros_like(pos), axis * slope[..., None])
    return rot, pos, omega, vel, alpha, acc, columns


def kinematics(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, qdd: torch.Tensor,
               *, gravity: bool = True) -> Kinematics:
    """Poses, velocities and accelerations of every body for states (..., n_coordinates)."""
    dtype, device = q.dtype, q.device
    batch = q.shape[:-1]
    zero = torch.zeros(*batch, 3, dtype=dtype, device=device)
    ground_acc = zero - skeleton.gravity.to(dtype) if gravity else zero
    ground = (torch.eye(3, dtype=dtype, device=device).expand(*batch, 3, 3), zero, zero, zero,
              zero, ground_acc)
    n = skeleton.n_bodies
    out = Kinematics(rotation=_slots(n), origin=_slots(n), angular_velocity=_slots(n),
                     velocity=_slots(n), angular_acceleration=_slots(n), acceleration=_slots(n),
                     joint_origin=[], joint_columns=[])
    for joint in skeleton.joints:
        if joint.parent < 0:
            r_gp, p_gp, w_p, v_p, al_p, a_p = ground
        else:
            i = joint.parent
            r_gp, p_gp = out.rotation[i], out.origin[i]
            w_p, v_p = out.angular_velocity[i], out.velocity[i]
            al_p, a_p = out.angular_acceleration[i], out.acceleration[i]
        r_fm, p_fm, w_fm, v_fm, al_fm, a_fm, cols = joint_motion(joint, q, qd, qdd)
        r_gf = r_gp @ joint.parent_rotation.to(dtype)
        arm = _mv(r_gp, joint.parent_offset.to(dtype))
        p_gf = p_gp + arm
        v_f = v_p + torch.cross(w_p, arm, dim=-1)
        a_f = a_p + torch.cross(al_p, arm, dim=-1) + torch.cross(w_p, torch.cross(w_p, arm, dim=-1),
                                                                 dim=-1)
        r_gm = r_gf @ r_fm
        arm = _mv(r_gf, p_fm)
        p_gm = p_gf + arm
        w_rel, v_rel = _mv(r_gf, w_fm), _mv(r_gf, v_fm)
        w_m = w_p + w_rel
        v_m = v_f + torch.cross(w_p, arm, dim=-1) + v_rel
        al_m = al_p + _mv(r_gf, al_fm) + torch.cross(w_p, w_rel, dim=-1)
        a_m = (a_f + torch.cross(al_p, arm, dim=-1)
               + torch.cross(w_p, torch.cross(w_p, arm, dim=-1), dim=-1)
               + 2 * torch.cross(w_p, v_rel, dim=-1) + _mv(r_gf, a_fm))
        r_gb = r_gm @ joint.child_rotation.to(dtype).transpose(-1, -2)
        arm = -_mv(r_gb, joint.child_offset.to(dtype))
        c = joint.child
        out.rotation[c] = r_gb
        out.origin[c] = p_gm + arm
        out.angular_velocity[c] = w_m
        out.velocity[c] = v_m + torch.cross(w_m, arm, dim=-1)
        out.angular_acceleration[c] = al_m
        out.acceleration[c] = (a_m + torch.cross(al_m, arm, dim=-1)
                               + torch.cross(w_m, torch.cross(w_m, arm, dim=-1), dim=-1))
        out.joint_origin.append(p_gm)
        out.joint_columns.append({k: (_mv(r_gf, ang), _mv(r_gf, lin))
                                  for k, (ang, lin) in cols.items()})
    return out


def poses(skeleton: Skeleton, q: torch.Tensor) -> Kinematics:
    """Rotations and origins of the bodies and the joints' columns, without their motion (the
    velocity and acceleration fields are left unfilled): what the mass matrix and external
    loads need."""
    dtype, device = q.dtype, q.device
    batch = q.shape[:-1]
    n = skeleton.n_bodies
    out = Kinematics(rotation=_slots(n), origin=_slots(n), angular_velocity=_slots(n),
                     velocity=_slots(n), angular_acceleration=_slots(n), acceleration=_slots(n),
                     joint_origin=[], joint_columns=[])
    eye = torch.eye(3, dtype=dtype, device=device).expand(*batch, 3, 3)
    zero = torch.zeros(*batch, 3, dtype=dtype, device=device)
    for joint in skeleton.joints:
        r_gp, p_gp = ((eye, zero) if joint.parent < 0
                      else (out.rotation[joint.parent], out.origin[joint.parent]))
        r_fm, p_fm, *_, cols = joint_motion(joint, q, None, None)
        r_gf = r_gp @ joint.parent_rotation.to(dtype)
        p_gm = p_gp + _mv(r_gp, joint.parent_offset.to(dtype)) + _mv(r_gf, p_fm)
        r_gb = r_gf @ r_fm @ joint.child_rotation.to(dtype).transpose(-1, -2)
        out.rotation[joint.child] = r_gb
        out.origin[joint.child] = p_gm - _mv(r_gb, joint.child_offset.to(dtype))
        out.joint_origin.append(p_gm)
        out.joint_columns.append({k: (_mv(r_gf, ang), _mv(r_gf, lin))
                                  for k, (ang, lin) in cols.items()})
    return out


def inertia_matrix(pi: torch.Tensor) -> torch.Tensor:
    """The 3x3 inertia about the body origin from (..., 10) inertial parameters."""
    xx, yy, zz, xy, xz, yz = (pi[..., k] for k in range(4, 10))
    return torch.stack([torch.stack([xx, xy, xz], -1), torch.stack([xy, yy, yz], -1),
                        torch.stack([xz, yz, zz], -1)], -2)


def body_wrenches(kin: Kinematics, pi: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per body, the moment about the ground origin and force (ground axes) its motion needs.

    ``pi`` is (..., n_bodies, 10) and broadcasts against the states' batch shape.
    """
    out = []
    for b in range(pi.shape[-2]):
        p = pi[..., b, :]
        rot = kin.rotation[b]
        w, al, a = kin.angular_velocity[b], kin.angular_acceleration[b], kin.acceleration[b]
        mass = p[..., 0:1]
        h = _mv(rot, p[..., 1:4])
        inertia = rot @ inertia_matrix(p) @ rot.transpose(-1, -2)
        force = mass * a + torch.cross(al, h, dim=-1) + torch.cross(w, torch.cross(w, h, dim=-1),
                                                                    dim=-1)
        moment = (_mv(inertia, al) + torch.cross(w, _mv(inertia, w), dim=-1)
                  + torch.cross(h, a, dim=-1))
        moment = moment + torch.cross(kin.origin[b], force, dim=-1)
        out.append((moment, force))
    return out


def project(skeleton: Skeleton, kin: Kinematics,
            wrenches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Generalized forces from per-body spatial forces about the ground origin (backward pass)."""
    moments = [m for m, _ in wrenches]
    forces = [f for _, f in wrenches]
    shape = torch.broadcast_shapes(*(m.shape for m in moments))
    tau: list[torch.Tensor | None] = [None] * skeleton.n_coordinates
    for j in range(len(skeleton.joints) - 1, -1, -1):
        joint = skeleton.joints[j]
        c = joint.child
        moment, force = moments[c], forces[c]
        if joint.parent >= 0:
            moments[joint.parent] = moments[joint.parent] + moment
            forces[joint.parent] = forces[joint.parent] + force
        if not kin.joint_columns[j]:
            continue
        about_m = moment - torch.cross(kin.joint_origin[j], force, dim=-1)
        for k, (ang, lin) in kin.joint_columns[j].items():
            term = (ang * about_m).sum(-1) + (lin * force).sum(-1)
            previous = tau[k]
            tau[k] = term if previous is None else previous + term
    zero = torch.zeros(shape[:-1], dtype=moments[0].dtype, device=moments[0].device)
    return torch.stack([zero if t is None else t.expand(shape[:-1]) for t in tau], -1)


def applied_wrenches(kin: Kinematics,
                     loads: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Spatial forces (..., n_bodies, 6) about body origins, as moments about the ground origin."""
    return [(loads[..., b, :3] + torch.cross(kin.origin[b], loads[..., b, 3:], dim=-1),
             loads[..., b, 3:]) for b in range(loads.shape[-2])]


def inverse_dynamics(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, qdd: torch.Tensor,
                     *, inertial: torch.Tensor | None = None, loads: torch.Tensor | None = None,
                     gravity: bool = True) -> torch.Tensor:
    """Generalized forces (..., n_coordinates) that produce ``qdd`` at (q, qd) under ``loads``."""
    pi = skeleton.inertial.to(q.dtype) if inertial is None else inertial
    kin = kinematics(skeleton, q, qd, qdd, gravity=gravity)
    tau = project(skeleton, kin, body_wrenches(kin, pi))
    if loads is not None:
        tau = tau - project(skeleton, kin, applied_wrenches(kin, loads))
    return tau


def generalized_loads(skeleton: Skeleton, q: torch.Tensor, loads: torch.Tensor) -> torch.Tensor:
    """J^T F: the generalized forces that external body loads (..., n_bodies, 6) produce."""
    kin = poses(skeleton, q)
    return project(skeleton, kin, applied_wrenches(kin, loads))


def bias_forces(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, *,
                inertial: torch.Tensor | None = None, gravity: bool = True) -> torch.Tensor:
    """Coriolis, centrifugal and gravity terms C(q, qd) - g(q): inverse dynamics at qdd = 0."""
    return inverse_dynamics(skeleton, q, qd, torch.zeros_like(qd), inertial=inertial,
                            gravity=gravity)


@dataclass(frozen=True)
class _ColumnLayout:
    """Constant index tensors of the composite-rigid-body mass matrix for one joint tree.

    A column is one (joint, coordinate) pair of ``Kinematics.joint_columns``, taken in coordinate
    order; a coordinate that moves several joints has several columns, summed into its row and
    column of M (``to_coordinates``, None when the columns are the coordinates one to one).
    """

    columns: tuple[tuple[int, int], ...]  # (joint, coordinate)
    column_joint: torch.Tensor  # (n_columns,) joint of each column
    below: torch.Tensor  # (n_columns, n_columns) 1 where b's joint carries a's or is a's
    strictly_below: torch.Tensor  # (n_columns, n_columns) 1 where b's joint carries a's
    to_coordinates: torch.Tensor | None  # (n_columns, n_coordinates) 1 where the column moves it


_LAYOUTS: dict = {}


def _column_layout(skeleton: Skeleton, kin: Kinematics, device) -> _ColumnLayout:
    parents = tuple(joint.parent for joint in skeleton.joints)
    children = tuple(joint.child for joint in skeleton.joints)
    keys = tuple(tuple(cols) for cols in kin.joint_columns)
    key = (parents, children, keys, skeleton.n_coordinates, device)
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    joint_of_body = {child: j for j, child in enumerate(children)}
    above: list[set[int]] = []  # each joint's ancestors among the joints, itself included
    for j, parent in enumerate(parents):
        above.append({j} | (above[joint_of_body[parent]] if parent >= 0 else set()))
    columns = sorted(((j, k) for j, cols in enumerate(keys) for k in cols), key=lambda c: c[1])
    below, strictly = (torch.tensor([[float(jb in above[ja] and (ja != jb or not strict))
                                      for jb, _ in columns] for ja, _ in columns],
                                    dtype=torch.float64, device=device
                                    ).reshape(len(columns), len(columns))
                       for strict in (False, True))
    to_coordinates = None
    if [k for _, k in columns] != list(range(skeleton.n_coordinates)):
        to_coordinates = torch.zeros(len(columns), skeleton.n_coordinates, dtype=torch.float64,
                                     device=device)
        for a, (_, k) in enumerate(columns):
            to_coordinates[a, k] = 1.0
    layout = _ColumnLayout(tuple(columns), torch.tensor([j for j, _ in columns], dtype=torch.long,
                                                        device=device),
                           below, strictly, to_coordinates)
    _LAYOUTS[key] = layout
    return layout


def _composite_mass_matrix(skeleton: Skeleton, kin: Kinematics, pi: torch.Tensor) -> torch.Tensor:
    """M(q) by the composite-rigid-body algorithm, everything about the ground origin.

    Each body's spatial inertia is taken about the ground origin in ground axes, so a joint's
    composite inertia (the bodies it carries) is a plain sum. With S_a = (w_a, v_a) the motion
    of column a (angular axis, velocity of the point at the ground origin) and Ic_a the composite
    inertia of its joint, M[a, b] = S_b . (Ic_a S_a) when b's joint carries a's: the inverse
    dynamics of unit accelerations at rest, without its n passes.
    """
    dtype, device = pi.dtype, pi.device
    layout = _column_layout(skeleton, kin, device)
    n = skeleton.n_coordinates
    batch = torch.broadcast_shapes(pi.shape[:-2], kin.joint_origin[0].shape[:-1]
                                   if kin.joint_origin else ())
    if layout.column_joint.numel() == 0:
        return torch.zeros(*batch, n, n, dtype=dtype, device=device)
    rot = torch.stack(kin.rotation, -3)  # (..., nb, 3, 3)
    origin = torch.stack(kin.origin, -2)  # (..., nb, 3)
    mass = pi[..., 0:1]
    h = _mv(rot, pi[..., 1:4])  # first moment about the body origin, ground axes
    inertia = rot @ inertia_matrix(pi) @ rot.transpose(-1, -2)
    # about the ground origin: h_G = h + m p and
    # I_G = I_O - [h][p] - [p][h] - m [p][p] = I_O + (2 h.p + m p.p) 1 - p h_G^T - h p^T
    h_g = h + mass * origin
    trace = 2 * (h * origin).sum(-1) + mass[..., 0] * (origin * origin).sum(-1)
    eye = torch.eye(3, dtype=dtype, device=device)
    inertia_g = (inertia + trace[..., None, None] * eye - origin[..., :, None] * h_g[..., None, :]
                 - h[..., :, None] * origin[..., None, :])
    shape = torch.broadcast_shapes(mass.shape[:-1], h_g.shape[:-1])
    packed = torch.cat([mass.expand(*shape, 1), h_g.expand(*shape, 3),
                        inertia_g.expand(*shape, 3, 3).flatten(-2)], -1)  # (..., nb, 13)
    # composite inertia of each joint: its child body and everything it carries (leaves first)
    bodies = packed.unbind(-2)
    composite: list[torch.Tensor] = [bodies[joint.child] for joint in skeleton.joints]
    joint_of_body = {joint.child: j for j, joint in enumerate(skeleton.joints)}
    for j in range(len(skeleton.joints) - 1, -1, -1):
        parent = skeleton.joints[j].parent
        if parent >= 0:
            up = joint_of_body[parent]
            composite[up] = composite[up] + composite[j]
    per_column = torch.stack(composite, -2).index_select(-2, layout.column_joint)
    m_a, h_a = per_column[..., 0:1], per_column[..., 1:4]
    inertia_a = per_column[..., 4:].unflatten(-1, (3, 3))
    cols = [(j, *kin.joint_columns[j][k]) for j, k in layout.columns]
    w = torch.stack([ang for _, ang, _ in cols], -2)  # (..., nc, 3)
    v = torch.stack([lin + torch.cross(kin.joint_origin[j], ang, dim=-1) for j, ang, lin in cols],
                    -2)
    h_a, v_b = torch.broadcast_tensors(h_a, v)  # the inertial and the states' batch shapes
    moment = _mv(inertia_a, w) + torch.cross(h_a, v_b, dim=-1)  # Ic_a S_a
    force = m_a * v + torch.cross(w.expand_as(h_a), h_a, dim=-1)
    # gram[a, b] = S_b . Ic_a S_a, which is M[a, b] when b's joint carries a's
    gram = torch.cat([moment, force], -1) @ torch.cat([w, v], -1).transpose(-1, -2)
    mass_cols = (gram * layout.below.to(dtype)
                 + (gram * layout.strictly_below.to(dtype)).transpose(-1, -2))
    if layout.to_coordinates is None:
        return mass_cols
    to_coordinates = layout.to_coordinates.to(dtype)
    return to_coordinates.T @ mass_cols @ to_coordinates


def mass_matrix(skeleton: Skeleton, q: torch.Tensor, *,
                inertial: torch.Tensor | None = None) -> torch.Tensor:
    """M(q) (..., n, n): the inverse dynamics of unit accelerations at rest without gravity,
    formed from one kinematics pass (composite rigid bodies); ``inertial`` (..., n_bodies, 10)
    broadcasts against the states."""
    pi = skeleton.inertial.to(q.dtype) if inertial is None else inertial
    return _composite_mass_matrix(skeleton, poses(skeleton, q), pi)


def mass_matrix_and_bias(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, *,
                         inertial: torch.Tensor | None = None, loads: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """M(q) and the bias forces (with gravity and ``loads``): one kinematics pass shared by the
    composite-rigid-body mass matrix and the inverse dynamics at qdd = 0."""
    pi = skeleton.inertial.to(q.dtype) if inertial is None else inertial
    kin = kinematics(skeleton, q, qd, torch.zeros_like(qd))
    bias = project(skeleton, kin, body_wrenches(kin, pi))
    if loads is not None:
        bias = bias - project(skeleton, kin, applied_wrenches(kin, loads))
    return _composite_mass_matrix(skeleton, kin, pi), bias


def regressor(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, qdd: torch.Tensor, *,
              gravity: bool = True) -> torch.Tensor:
    """Y (..., n_coordinates, n_bodies * 10) with tau = Y pi.flatten() (no external loads)."""
    kin = kinematics(skeleton, q, qd, qdd, gravity=gravity)
    nb = skeleton.n_bodies
    basis = torch.eye(nb * 10, dtype=q.dtype, device=q.device).reshape(nb * 10, nb, 10)
    kin_b = Kinematics(
        rotation=[t.unsqueeze(-3) for t in kin.rotation],
        origin=[t.unsqueeze(-2) for t in kin.origin],
        angular_velocity=[t.unsqueeze(-2) for t in kin.angular_velocity],
        velocity=[t.unsqueeze(-2) for t in kin.velocity],
        angular_acceleration=[t.unsqueeze(-2) for t in kin.angular_acceleration],
        acceleration=[t.unsqueeze(-2) for t in kin.acceleration],
        joint_origin=[t.unsqueeze(-2) for t in kin.joint_origin],
        joint_columns=[{k: (a.unsqueeze(-2), b.unsqueeze(-2)) for k, (a, b) in cols.items()}
                       for cols in kin.joint_columns])
    tau = project(skeleton, kin_b, body_wrenches(kin_b, basis))  # (..., K, n)
    return tau.transpose(-1, -2)
