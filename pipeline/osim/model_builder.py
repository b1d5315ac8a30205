"""Declarative helpers that turn plain-Python model specs into OpenSim components.

The demo models (:mod:`pipeline.osim.models_arm`, :mod:`pipeline.osim.models_leg`) are written as
tuples of frozen dataclasses (bodies, muscles, markers, wrap objects); this module is the only place
that talks to the OpenSim object API while building them. Every OpenSim object handed to a model is
marked as owned by C++ (``thisown = False``) so that Python's garbage collector never frees a
component the model still holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import opensim


Vec = tuple[float, float, float]

#: Fibre damping of every DeGrooteFregly2016Muscle (normalised; Moco's recommended small value).
FIBER_DAMPING = 0.01
#: Maximum contraction velocity in optimal fibre lengths per second (paper 002: vmax = 10 l0/s).
MAX_CONTRACTION_VELOCITY = 10.0
#: Tendon strain at one normalised force (OpenSim default, SCIENCE.md epsilon_0).
TENDON_STRAIN_AT_ONE_NORM_FORCE = 0.049


@dataclass(frozen=True)
class BodySpec:
    """A rigid segment: mass (kg), centre of mass and principal inertia about it (body frame)."""

    name: str
    mass_kg: float
    com_m: Vec
    inertia_kgm2: Vec


@dataclass(frozen=True)
class MovingPoint:
    """A path point whose body-frame location is a cubic spline of one coordinate.

    ``x`` and ``y`` are ``(coordinate_values, locations_m)``; ``z`` is a constant location (m).
    """

    body: str
    coordinate: str
    x: tuple[tuple[float, ...], tuple[float, ...]]
    y: tuple[tuple[float, ...], tuple[float, ...]]
    z: float


@dataclass(frozen=True)
class WrapCylinderSpec:
    """A cylinder fixed to ``body``; its axis is the local z axis after ``rotation_rad`` (XYZ)."""

    name: str
    body: str
    translation_m: Vec
    rotation_rad: Vec
    radius_m: float
    length_m: float
    quadrant: str = "all"


@dataclass(frozen=True)
class WrapSphereSpec:
    """A sphere fixed to ``body`` (paths wrap along great circles: exact, smooth geometry)."""

    name: str
    body: str
    translation_m: Vec
    radius_m: float
    quadrant: str = "all"


PathPointSpec = tuple[str, Vec] | MovingPoint


@dataclass(frozen=True)
class MuscleSpec:
    """A DeGrooteFregly2016Muscle MTU: published properties and its path (origin to insertion)."""

    name: str
    max_isometric_force_n: float
    optimal_fiber_length_m: float
    tendon_slack_length_m: float
    pennation_angle_rad: float
    path: tuple[PathPointSpec, ...]
    wraps: tuple[str, ...] = ()


@dataclass(frozen=True)
class MarkerSpec:
    """A skin marker fixed to ``body`` at ``location_m`` (body frame)."""

    name: str
    body: str
    location_m: Vec


def vec3(v: Iterable[float]) -> opensim.Vec3:
    """Convert a 3-sequence into an ``opensim.Vec3``."""
    import opensim
    x, y, z = (float(c) for c in v)
    return opensim.Vec3(x, y, z)


def _adopted(obj: object) -> object:
    """Mark an object as owned by the model (C++), so Python never deletes it."""
    obj.thisown = False  # type: ignore[attr-defined]
    return obj


def add_body(model: opensim.Model, spec: BodySpec) -> opensim.Body:
    """Create a body from ``spec`` and add it to ``model``."""
    import opensim
    ixx, iyy, izz = spec.inertia_kgm2
    inertia = opensim.Inertia(ixx, iyy, izz, 0.0, 0.0, 0.0)
    body = opensim.Body(spec.name, spec.mass_kg, vec3(spec.com_m), inertia)
    model.addBody(_adopted(body))
    return body


def add_joint(model: opensim.Model, joint: opensim.Joint) -> opensim.Joint:
    """Add a constructed joint to ``model`` (taking ownership)."""
    model.addJoint(_adopted(joint))
    return joint


def set_coordinate(
    joint: opensim.Joint,
    index: int,
    name: str,
    *,
    range_: tuple[float, float],
    default: float = 0.0,
) -> opensim.Coordinate:
    """Name a joint coordinate and set its range and default value."""
    coord = joint.upd_coordinates(index)
    coord.setName(name)
    coord.setRangeMin(range_[0])
    coord.setRangeMax(range_[1])
    coord.setDefaultValue(default)
    coord.setDefaultClamped(False)
    return coord


def add_wrap_cylinder(model: opensim.Model, spec: WrapCylinderSpec) -> opensim.WrapCylinder:
    """Attach a wrap cylinder to its body."""
    import opensim
    body = model.updBodySet().get(spec.body)
    cyl = opensim.WrapCylinder()
    cyl.setName(spec.name)
    cyl.set_radius(spec.radius_m)
    cyl.set_length(spec.length_m)
    cyl.set_translation(vec3(spec.translation_m))
    cyl.set_xyz_body_rotation(vec3(spec.rotation_rad))
    cyl.set_quadrant(spec.quadrant)
    body.addWrapObject(_adopted(cyl))
    return cyl


def add_wrap_sphere(model: opensim.Model, spec: WrapSphereSpec) -> opensim.WrapSphere:
    """Attach a wrap sphere to its body."""
    import opensim
    body = model.updBodySet().get(spec.body)
    sphere = opensim.WrapSphere()
    sphere.setName(spec.name)
    sphere.set_radius(spec.radius_m)
    sphere.set_translation(vec3(spec.translation_m))
    sphere.set_quadrant(spec.quadrant)
    body.addWrapObject(_adopted(sphere))
    return sphere


def add_wrap(model: opensim.Model, spec: WrapCylinderSpec | WrapSphereSpec) -> object:
    """Attach a wrap cylinder or sphere to its body."""
    if isinstance(spec, WrapSphereSpec):
        return add_wrap_sphere(model, spec)
    return add_wrap_cylinder(model, spec)


def _spline(points: tuple[tuple[float, ...], tuple[float, ...]]) -> opensim.SimmSpline:
    import opensim
    xs, ys = points
    spline = opensim.SimmSpline()
    for x, y in zip(xs, ys, strict=True):
        spline.addPoint(float(x), float(y))
    return spline


def add_muscle(model: opensim.Model, spec: MuscleSpec) -> opensim.DeGrooteFregly2016Muscle:
    """Create a DeGrooteFregly2016Muscle (elastic tendon) along the path of ``spec``."""
    import opensim
    muscle = opensim.DeGrooteFregly2016Muscle()
    muscle.setName(spec.name)
    muscle.set_max_isometric_force(spec.max_isometric_force_n)
    muscle.set_optimal_fiber_length(spec.optimal_fiber_length_m)
    muscle.set_tendon_slack_length(spec.tendon_slack_length_m)
    muscle.set_pennation_angle_at_optimal(spec.pennation_angle_rad)
    muscle.set_max_contraction_velocity(MAX_CONTRACTION_VELOCITY)
    muscle.set_tendon_strain_at_one_norm_force(TENDON_STRAIN_AT_ONE_NORM_FORCE)
    muscle.set_ignore_tendon_compliance(False)
    muscle.set_fiber_damping(FIBER_DAMPING)
    muscle.set_default_activation(0.05)
    bodies = model.getBodySet()
    path = muscle.updGeometryPath()
    for i, point in enumerate(spec.path, start=1):
        point_name = f"{spec.name}-P{i}"
        if isinstance(point, MovingPoint):
            moving = opensim.MovingPathPoint()
            moving.setName(point_name)
            moving.setParentFrame(bodies.get(point.body))
            moving.set_x_location(_spline(point.x))
            moving.set_y_location(_spline(point.y))
            moving.set_z_location(opensim.Constant(point.z))
            coord = model.getCoordinateSet().get(point.coordinate)
            moving.setXCoordinate(coord)
            moving.setYCoordinate(coord)
            moving.setZCoordinate(coord)
            path.updPathPointSet().adoptAndAppend(_adopted(moving))
        else:
            body_name, location = point
            path.appendNewPathPoint(point_name, bodies.get(body_name), vec3(location))
    for wrap_name in spec.wraps:
        wrap = None
        for body in bodies:
            wraps = body.getWrapObjectSet()
            if wraps.contains(wrap_name):
                wrap = wraps.get(wrap_name)
        if wrap is None:
            raise KeyError(f"wrap object {wrap_name!r} of {spec.name!r} is not on any body")
        path.addPathWrap(wrap)
    model.addForce(_adopted(muscle))
    return muscle


def add_marker(model: opensim.Model, spec: MarkerSpec) -> opensim.Marker:
    """Add a fixed marker to ``model``."""
    import opensim
    marker = opensim.Marker(spec.name, model.getBodySet().get(spec.body), vec3(spec.location_m))
    model.addMarker(_adopted(marker))
    return marker


def mtu_lengths_at(model: opensim.Model, pose: Mapping[str, float]) -> dict[str, float]:
    """MTU lengths (m) of every muscle of an initialised ``model`` at ``pose`` (coordinate: rad)."""
    state = model.initSystem()
    coords = model.getCoordinateSet()
    for name, value in pose.items():
        coords.get(name).setValue(state, value, False)
    model.assemble(state)
    model.realizePosition(state)
    muscles = model.getMuscles()
    return {muscles.get(i).getName(): muscles.get(i).getLength(state)
            for i in range(muscles.getSize())}


def slack_for_optimal_fibres(
    mtu_length_m: float, *, optimal_fiber_length_m: float, pennation_angle_rad: float
) -> float:
    """Tendon slack length that puts a rigid-tendon fibre at optimal length (rounded to 0.1 mm).

    Constant-thickness pennation: the fibre's projection along the MTU is l0 cos(phi0).
    """
    slack = mtu_length_m - optimal_fiber_length_m * math.cos(pennation_angle_rad)
    return round(slack, 4)
