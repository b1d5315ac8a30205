"""External loads (an OpenSim ``ExternalLoads`` file and its data) as per-body spatial forces.

Each ``ExternalForce`` gives a force, a point of application and a torque, each expressed in ground
or in a body, read from a ``.mot`` data file. The skeleton needs, per state, one spatial force per
body: the moment about the body origin and the force, in ground axes (:func:`body_loads`). The
conversion uses the skeleton's own poses, so it is differentiable with respect to the states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import torch

from pipeline.dynamics.skeleton import Skeleton, kinematics
from pipeline.errors import IDError, describe
from pipeline.io.opensim_files import read_sto


@dataclass(frozen=True)
class AppliedLoad:
    """One external force over time (``n_states``): arrays are (n_states, 3) or None."""

    body: int
    force: np.ndarray
    point: np.ndarray | None  # None: applied at the body origin
    torque: np.ndarray | None
    force_frame: int = -1  # -1: ground, else a body index (the torque uses the same frame)
    point_frame: int = -1


def _text(element, tag: str, default: str = "") -> str:
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text else default


def _columns(table, prefix: str, path) -> np.ndarray | None:
    if not prefix:
        return None
    labels = [prefix + axis for axis in "xyz"]
    missing = [label for label in labels if label not in table.labels]
    if missing:
        raise IDError(describe(path, f"columns {missing} are missing from the external loads data",
                               "check the identifiers in the ExternalLoads file"))
    return np.column_stack([table.column(label) for label in labels])


def read_external_loads(xml_path: str | Path, skeleton: Skeleton, times_s: np.ndarray, *,
                        data_path: str | Path | None = None) -> list[AppliedLoad]:
    """The ExternalForces of ``xml_path``, linearly interpolated at ``times_s``; ``data_path``
    replaces the data file the XML names (as OpenSim's ID tool's ``--grf``)."""
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise IDError(describe(xml_path, f"cannot read the external loads ({exc})",
                               "give an OpenSim ExternalLoads .xml file")) from None
    loads_el = root if root.tag == "ExternalLoads" else root.find("ExternalLoads")
    if loads_el is None:
        raise IDError(describe(xml_path, "no <ExternalLoads> element",
                               "give an OpenSim ExternalLoads .xml file"))
    body_index = {name: i for i, name in enumerate(skeleton.bodies)}

    def frame(name: str) -> int:
        if name in ("", "ground"):
            return -1
        if name not in body_index:
            raise IDError(describe(xml_path, f"body '{name}' is not in the model",
                                   "name a body of the model"))
        return body_index[name]

    datafile = _text(loads_el, "datafile")
    tables = {}
    out = []
    for force_el in loads_el.iter("ExternalForce"):
        if (_text(force_el, "isDisabled", "false").lower() == "true"
                or _text(force_el, "appliesForce", "true").lower() == "false"):
            continue
        source = datafile or _text(force_el, "data_source_name")  # datafile overrides
        path = xml_path.parent / source if data_path is None else Path(data_path)
        if source not in tables:
            if not path.is_file():
                raise IDError(describe(xml_path, f"data file '{path.name}' not found",
                                       "put the .mot next to the ExternalLoads file"))
            tables[source] = read_sto(path, error_cls=IDError,
                                      fix="give the external loads as an OpenSim .mot")
        table = tables[source]

        def at_times(values, table=table):
            if values is None:
                return None
            return np.column_stack([np.interp(times_s, table.time_s, values[:, k])
                                    for k in range(3)])

        body = frame(_text(force_el, "applied_to_body"))
        if body < 0:
            raise IDError(describe(xml_path, "an ExternalForce is applied to ground",
                                   "apply external forces to a body"))
        force = at_times(_columns(table, _text(force_el, "force_identifier"), path))
        if force is None:
            raise IDError(describe(xml_path, "an ExternalForce has no force_identifier",
                                   "name the force columns"))
        out.append(AppliedLoad(
            body=body, force=force,
            point=at_times(_columns(table, _text(force_el, "point_identifier"), path)),
            torque=at_times(_columns(table, _text(force_el, "torque_identifier"), path)),
            force_frame=frame(_text(force_el, "force_expressed_in_body", "ground")),
            point_frame=frame(_text(force_el, "point_expressed_in_body", "ground"))))
    return out


def body_loads(skeleton: Skeleton, q: torch.Tensor, loads: list[AppliedLoad]) -> torch.Tensor:
    """(n_states, n_bodies, 6): moment about each body origin and force, in ground axes."""
    zero = torch.zeros_like(q)
    kin = kinematics(skeleton, q, zero, zero, gravity=False)
    out = q.new_zeros(*q.shape[:-1], skeleton.n_bodies, 6)
    eye = torch.eye(3, dtype=q.dtype, device=q.device)

    def rotation(frame):
        return eye if frame < 0 else kin.rotation[frame]

    def to_ground(frame, vec):
        return (rotation(frame) @ vec.unsqueeze(-1)).squeeze(-1)

    for load in loads:
        t = lambda a: torch.as_tensor(a, dtype=q.dtype, device=q.device)  # noqa: E731
        force = to_ground(load.force_frame, t(load.force))
        moment = (to_ground(load.force_frame, t(load.torque)) if load.torque is not None
                  else torch.zeros_like(force))
        if load.point is not None:
            point = to_ground(load.point_frame, t(load.point))
            if load.point_frame >= 0:
                point = point + kin.origin[load.point_frame]
            moment = moment + torch.cross(point - kin.origin[load.body], force, dim=-1)
        out[..., load.body, :3] += moment
        out[..., load.body, 3:] += force
    return out
