"""OpenSim ``ExternalLoads`` XML for the per-foot GRF ``.mot`` written by the preprocessing.

One ``ExternalForce`` per foot, force and point expressed in ground, reading the columns
``ground_force_<s>_v{x,y,z}``, ``ground_force_<s>_p{x,y,z}`` and ``ground_torque_<s>_{x,y,z}``.
The datafile is referenced by name (relative to the XML), as OpenSim resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from xml.etree import ElementTree as ET

from pipeline.fileio import write_text_atomic

DEFAULT_BODIES = {"r": "calcn_r", "l": "calcn_l"}


def grf_columns(side: str) -> list[str]:
    """The nine GRF column names of one foot (``side`` is "r" or "l")."""
    return ([f"ground_force_{side}_v{a}" for a in "xyz"] + [f"ground_force_{side}_p{a}" for a in
            "xyz"] + [f"ground_torque_{side}_{a}" for a in "xyz"])


def external_loads_xml(datafile: str, *, bodies: Mapping[str, str] | None = None,
                       name: str = "external_loads") -> str:
    """XML text of an ExternalLoads with one ExternalForce per side in ``bodies``."""
    bodies = dict(DEFAULT_BODIES if bodies is None else bodies)
    root = ET.Element("OpenSimDocument", Version="40000")
    loads = ET.SubElement(root, "ExternalLoads", name=name)
    objects = ET.SubElement(loads, "objects")
    for side, body in bodies.items():
        force = ET.SubElement(objects, "ExternalForce",
                              name={"r": "right", "l": "left"}.get(side, side) + "_grf")
        for tag, text in (("applied_to_body", body), ("force_expressed_in_body", "ground"),
                          ("point_expressed_in_body", "ground"),
                          ("force_identifier", f"ground_force_{side}_v"),
                          ("point_identifier", f"ground_force_{side}_p"),
                          ("torque_identifier", f"ground_torque_{side}_"),
                          ("data_source_name", Path(datafile).name)):
            ET.SubElement(force, tag).text = text
    ET.SubElement(loads, "groups")
    ET.SubElement(loads, "datafile").text = Path(datafile).name
    ET.indent(root, space="\t")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n{body}\n'


def write_external_loads(path: str | Path, *, datafile: str | Path,
                         bodies: Mapping[str, str] | None = None) -> None:
    """Write the ExternalLoads XML atomically; ``datafile`` is the GRF .mot beside it."""
    write_text_atomic(path, external_loads_xml(Path(datafile).name, bodies=bodies,
                                               name=Path(path).stem))
