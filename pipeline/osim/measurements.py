"""A MeasurementSet derived from the model's markers, so a lab needs no hand-written XML.

For each body, marker pairs that span the segment are chosen in the generic model's default
pose (the documented default, README "Scaling without XML"):

- only bodies carrying mapped markers are measured;
- a body with a child joint: the mapped marker nearest its proximal joint centre (searched on the
  body and its parent) paired with the marker nearest its distal joint centre (on the body and
  its children); when two markers lie within ``second_pair_m`` of each joint centre (lateral
  and medial), two pairs, lateral with lateral and medial with medial;
- a leaf body (no child joint): its marker farthest from the proximal joint centre (two when
  within 5 cm of each other's distance, e.g. both acromia), each paired with the parent's marker
  nearest to it;
- the root body (jointed to ground): its own two markers farthest apart;
- pairs shorter than ``min_pair_m`` are dropped; a body with no pair takes the factors of its
  first child that has one (talus and toes from calcn), else of its parent.

``pairs`` in the config (body -> list of [marker, marker]) replaces the derived pairs of a body.
``axes: uniform`` scales each body by the mean ratio of its pairs on X, Y and Z; ``per_axis``
applies each pair to the body axis it is most aligned with in the default pose, and the body's
axes without an aligned pair take the mean ratio of all its pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ScalingError, describe

log = logging.getLogger(__name__)

AXES = ("X", "Y", "Z")
MODES = ("uniform", "per_axis")


@dataclass
class BodyMeasurement:
    """One body's pairs and the bodies that take its factors (itself first)."""

    body: str
    pairs: list[tuple[str, str]]
    source: str  # derived | config
    axes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Geometry:
    parent: dict[str, str]
    children: dict[str, list[str]]
    joint_centre: dict[str, np.ndarray]  # child body -> its parent joint's centre in ground
    marker_body: dict[str, str]
    marker_xyz: dict[str, np.ndarray]
    body_rotation: dict[str, np.ndarray]  # body -> 3x3 rotation ground<-body


def _base_body(frame: Any) -> str:
    return frame.findBaseFrame().getName()


def _geometry(model: Any, markers: Iterable[str]) -> _Geometry:
    state = model.initSystem()
    model.realizePosition(state)
    parent: dict[str, str] = {}
    children: dict[str, list[str]] = {}
    centre: dict[str, np.ndarray] = {}
    joints = model.getJointSet()
    for i in range(joints.getSize()):
        joint = joints.get(i)
        child = _base_body(joint.getChildFrame())
        par = _base_body(joint.getParentFrame())
        parent[child] = par
        children.setdefault(par, []).append(child)
        p = joint.getChildFrame().getPositionInGround(state)
        centre[child] = np.array([p.get(k) for k in range(3)])
    wanted = set(markers)
    mset = model.getMarkerSet()
    marker_body, marker_xyz = {}, {}
    for i in range(mset.getSize()):
        m = mset.get(i)
        if m.getName() not in wanted:
            continue
        marker_body[m.getName()] = _base_body(m.getParentFrame())
        p = m.getLocationInGround(state)
        marker_xyz[m.getName()] = np.array([p.get(k) for k in range(3)])
    rotation = {}
    bodies = model.getBodySet()
    for i in range(bodies.getSize()):
        body = bodies.get(i)
        r = body.getTransformInGround(state).R()
        rotation[body.getName()] = np.array([[r.get(a, b) for b in range(3)] for a in range(3)])
    return _Geometry(parent, children, centre, marker_body, marker_xyz, rotation)


def _on(geo: _Geometry, bodies: Iterable[str]) -> list[str]:
    wanted = set(bodies)
    return [m for m, b in geo.marker_body.items() if b in wanted]


def _nearest(geo: _Geometry, names: list[str], point: np.ndarray) -> list[tuple[float, str]]:
    return sorted((float(np.linalg.norm(geo.marker_xyz[n] - point)), n) for n in names)


def _derive_pairs(geo: _Geometry, body: str, *, min_pair_m: float,
                  second_pair_m: float) -> list[tuple[str, str]]:
    own = _on(geo, [body])
    if not own:
        return []  # takes the factors of a neighbour (see derive_measurements)
    par = geo.parent.get(body)
    kids = geo.children.get(body, [])

    def length(a: str, b: str) -> float:
        return float(np.linalg.norm(geo.marker_xyz[a] - geo.marker_xyz[b]))

    if par is None or par == "ground" or body not in geo.joint_centre:
        if len(own) < 2:
            return []
        best = max(((length(a, b), a, b) for i, a in enumerate(own) for b in own[i + 1:]))
        return [(best[1], best[2])] if best[0] >= min_pair_m else []
    proximal = _nearest(geo, _on(geo, [body, par]), geo.joint_centre[body])
    if not proximal:
        return []
    if not kids:
        # A leaf (e.g. a torso): its markers farthest from the proximal joint (two when they are
        # as far as each other, e.g. left and right acromion), each paired with the nearest
        # marker on the parent (same side).
        far = sorted(((float(np.linalg.norm(geo.marker_xyz[n] - geo.joint_centre[body])), n)
                      for n in own), reverse=True)
        tops = [n for d, n in far[:2] if d >= far[0][0] - 0.05]
        below = _on(geo, [par])
        leaf: list[tuple[str, str]] = []
        for top in tops:
            near = [n for _, n in _nearest(geo, below, geo.marker_xyz[top])
                    if n not in {q[0] for q in leaf}]
            if near and length(near[0], top) >= min_pair_m:
                leaf.append((near[0], top))
        return leaf
    distal_point = np.mean([geo.joint_centre[k] for k in kids], axis=0)
    distal = _nearest(geo, _on(geo, [body, *kids]), distal_point)
    near_p = [n for d, n in proximal[:2] if d <= second_pair_m] or [proximal[0][1]]
    near_d = [n for d, n in distal[:2] if d <= second_pair_m] or [n for _, n in distal[:1]]
    if len(near_p) == 2 and len(near_d) == 2:
        # Lateral with lateral, medial with medial: the pairing with the shorter total length.
        straight = [(near_p[0], near_d[0]), (near_p[1], near_d[1])]
        crossed = [(near_p[0], near_d[1]), (near_p[1], near_d[0])]
        candidates = min((straight, crossed), key=lambda ps: sum(length(*q) for q in ps))
    else:
        candidates = [(near_p[0], d) for d in near_d[:1]]
    pairs = [q for q in candidates if q[0] != q[1] and length(*q) >= min_pair_m]
    return pairs


def _axis_of(geo: _Geometry, body: str, pair: tuple[str, str]) -> str:
    direction = geo.marker_xyz[pair[1]] - geo.marker_xyz[pair[0]]
    in_body = geo.body_rotation[body].T @ direction
    return AXES[int(np.argmax(np.abs(in_body)))]


def derive_measurements(model: Any, markers: Sequence[str], *,
                        pairs: Mapping[str, Sequence[Sequence[str]]] | None = None,
                        axes: str = "uniform", min_pair_m: float = 0.05,
                        second_pair_m: float = 0.08,
                        file: str | PathLike[str] | None = None) -> list[BodyMeasurement]:
    """Per scaled body, the marker pairs and the bodies taking the same factors.

    ``model`` is an OpenSim model holding its marker set; ``markers`` the mapped marker names
    present in the static trial; ``pairs`` overrides per body (markers must be in ``markers``).
    """
    if axes not in MODES:
        raise ScalingError(describe(file, f"scaling axes {axes!r} unknown",
                                    f"use one of {', '.join(MODES)}"))
    available = [m for m in markers]
    geo = _geometry(model, available)
    overrides = dict(pairs or {})
    bodies = [model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())]
    unknown = sorted(set(overrides) - set(bodies))
    bad = sorted({m for ps in overrides.values() for p in ps for m in p} - set(geo.marker_xyz))
    if unknown or bad:
        parts = ([f"bodies not in the model: {', '.join(unknown)}"] if unknown else []) + (
            [f"markers not in the model's marker set or not in the static trial: "
             f"{', '.join(bad)}"] if bad else [])
        raise ScalingError(describe(file, "scaling pairs in config.yaml: " + "; ".join(parts),
                                    "name bodies of the model and markers of the static "
                                    "trial (after marker_names) in models.<model>.scaling.pairs"))
    result: dict[str, BodyMeasurement] = {}
    for body in bodies:
        if body in overrides:
            chosen = [(str(a), str(b)) for a, b in overrides[body]]
            source = "config"
        else:
            chosen = _derive_pairs(geo, body, min_pair_m=min_pair_m, second_pair_m=second_pair_m)
            source = "derived"
        if not chosen:
            continue
        m = BodyMeasurement(body, chosen, source, bodies=[body])
        if axes == "per_axis":
            for pair in chosen:
                m.axes.setdefault(_axis_of(geo, body, pair), []).append(pair)
        result[body] = m
    # Bodies without pairs: their first child with a measurement, else their parent's.
    for body in bodies:
        if body in result:
            continue
        donor = next((k for k in geo.children.get(body, []) if k in result), None)
        if donor is None:
            up = geo.parent.get(body)
            while up is not None and up not in result:
                up = geo.parent.get(up)
            donor = up
        if donor is not None:
            result[donor].bodies.append(body)
        else:
            log.warning("%s: no marker pair scales body %s (left unscaled)", file, body)
    return list(result.values())


def measurement_set(measurements: Sequence[BodyMeasurement]) -> Any:
    """An OpenSim MeasurementSet for the measurements (one Measurement per body and axis set)."""
    import opensim as osim

    mset = osim.MeasurementSet()
    for m in measurements:
        groups: list[tuple[str, list[tuple[str, str]], list[str]]]
        if m.axes:
            covered = sorted(m.axes)
            groups = [(f"{m.body}_{ax}", m.axes[ax], [ax]) for ax in covered]
            rest = [ax for ax in AXES if ax not in covered]
            if rest:
                groups.append((f"{m.body}_{''.join(rest)}", m.pairs, rest))
        else:
            groups = [(m.body, m.pairs, list(AXES))]
        for name, pairs, axes in groups:
            meas = osim.Measurement()
            meas.setName(name)
            meas.setApply(True)
            for a, b in pairs:
                meas.getMarkerPairSet().cloneAndAppend(osim.MarkerPair(a, b))
            for body in m.bodies:
                scale = osim.BodyScale()
                scale.setName(body)
                names = osim.ArrayStr()
                for ax in axes:
                    names.append(ax)
                scale.setAxisNames(names)
                meas.getBodyScaleSet().cloneAndAppend(scale)
            mset.cloneAndAppend(meas)
    return mset


def write_measurement_set(path: str | Path, measurements: Sequence[BodyMeasurement]) -> Path:
    """Write the MeasurementSet XML (OpenSim's own serialisation)."""
    from pipeline.fileio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        measurement_set(measurements).printToXML(str(tmp))
    return path


def pairs_by_body(measurements: Sequence[BodyMeasurement]) -> dict[str, dict[str, Any]]:
    """Body -> {pairs, source, from} for the scale report (``from``: the body measured)."""
    out: dict[str, dict[str, Any]] = {}
    for m in measurements:
        for body in m.bodies:
            out[body] = {"pairs": [list(p) for p in m.pairs], "source": m.source,
                         "measured_on": m.body}
    return out
