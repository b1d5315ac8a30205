"""Read the scaled model's muscles; write ``parameters.json`` and ``calibrated.osim``.

``parameters.json`` follows the DESIGN.md contract: per MTU and parameter ``value``, ``initial``,
``lower``, ``upper``, ``at_bound``, ``se`` (standard error from the identifiability analysis, null
when not computed or not finite) and ``units``; ``max_isometric_force_n`` is the effective force
(generic maximum isometric force x strength coefficient) with bounds scaled the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.calibrate.spec import KINDS, MuscleProperties, ParameterSpec
from pipeline.errors import ModelError, describe
from pipeline.fileio import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

#: parameters.json key and units of each parameter kind.
JSON_KEYS = {
    "optimal_fiber_length": ("optimal_fiber_length_m", "m"),
    "tendon_slack_length": ("tendon_slack_length_m", "m"),
    "strength": ("strength_coefficient", "1"),
    "c1": ("c1", "1"),
    "c2": ("c2", "1"),
    "shape_factor": ("shape_factor", "1"),
    "damping": ("damping", "1"),
}
#: Fraction of the bound range within which a value counts as "at a bound".
AT_BOUND_FRACTION = 1e-3


#: The muscle properties calibration reads and writes (XML elements of every OpenSim Muscle).
_XML_PROPERTIES = ("optimal_fiber_length", "tendon_slack_length", "max_isometric_force",
                   "pennation_angle_at_optimal")


def _parse_osim(path: Path):  # noqa: ANN202 (xml.etree.ElementTree.ElementTree)
    """The model file's XML tree (comments kept), or None where it does not parse."""
    import xml.etree.ElementTree as ET

    try:
        return ET.parse(path, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    except (ET.ParseError, OSError, UnicodeDecodeError):
        return None


def _xml_muscles(tree, mtu_names: Sequence[str]) -> dict | None:  # noqa: ANN001
    """``name -> element`` of the named muscles in an .osim XML tree, each with all of
    :data:`_XML_PROPERTIES` as plain numbers; None where any is missing, repeated or not a
    number (OpenSim then reads the model: defaults, errors)."""
    if tree is None:
        return None
    wanted = set(mtu_names)
    found: dict = {}
    for element in tree.getroot().iter():
        name = element.get("name")
        if name in wanted and element.find("max_isometric_force") is not None:
            if name in found:
                return None
            found[name] = element
    if len(found) != len(wanted):
        return None
    for element in found.values():
        for key in _XML_PROPERTIES:
            child = element.find(key)
            try:
                float((child.text or "") if child is not None else "")
            except ValueError:
                return None
    return found


def read_muscle_properties(osim_path: str | Path, mtu_names: Sequence[str]) -> MuscleProperties:
    """Optimal fibre length, tendon slack length, max isometric force, pennation of MTUs.

    Read from the model file's XML (the values OpenSim's getters return, without importing and
    loading OpenSim: most of a second per process); from OpenSim itself where the XML does not
    state them all (a property left at its default) or is not plain.
    """
    path = Path(osim_path)
    if not path.exists():
        raise ModelError(describe(path, "model file not found",
                                  "run the scaling step first (results/<subject>/model/)"))
    elements = _xml_muscles(_parse_osim(path), mtu_names)
    if elements is not None:
        types: dict[str, list[str]] = {}
        for name in mtu_names:
            types.setdefault(elements[name].tag, []).append(name)
        _log_muscle_types(path, types)
        return MuscleProperties(tuple(mtu_names), *(
            np.asarray([float(elements[n].find(key).text) for n in mtu_names], dtype=float)
            for key in _XML_PROPERTIES))
    return _read_muscle_properties_opensim(path, mtu_names)


def _read_muscle_properties_opensim(path: Path, mtu_names: Sequence[str]) -> MuscleProperties:
    import opensim

    try:
        model = opensim.Model(str(path))
    except Exception as exc:  # opensim raises its own exception types
        raise ModelError(describe(path, f"OpenSim cannot load the model ({exc})",
                                  "rerun the scaling step")) from exc
    muscles = model.getMuscles()
    values: dict[str, list[float]] = {k: [] for k in ("l0", "lts", "fmax", "phi")}
    types: dict[str, list[str]] = {}
    for name in mtu_names:
        if muscles.getIndex(name) < 0:
            raise ModelError(describe(path, f"the model has no muscle {name!r} (named in the NMS "
                                      "inputs)", "use the scaled model the inputs came from, or "
                                      "fix the excitation mapping in config.yaml"))
        m = muscles.get(name)
        types.setdefault(m.getConcreteClassName(), []).append(name)
        values["l0"].append(m.getOptimalFiberLength())
        values["lts"].append(m.getTendonSlackLength())
        values["fmax"].append(m.getMaxIsometricForce())
        values["phi"].append(m.getPennationAngleAtOptimalFiberLength())
    _log_muscle_types(path, types)
    return MuscleProperties(tuple(mtu_names), *(np.asarray(values[k], dtype=float)
                                                for k in ("l0", "lts", "fmax", "phi")))


_LOGGED_TYPES: set[tuple[str, ...]] = set()


def _log_muscle_types(path: Path, types: Mapping[str, list[str]]) -> None:
    """Say once per process and set of types that calibration uses DeGrooteFregly2016 curves
    whatever the model's muscle type (its l0, l_ts, Fmax and pennation are read and written
    back; calibrated.osim keeps the model's types)."""
    others = sorted(t for t in types if t != "DeGrooteFregly2016Muscle")
    key = tuple(sorted(types))
    if not others or key in _LOGGED_TYPES:
        return
    _LOGGED_TYPES.add(key)
    log.info("%s: muscles of type %s (%d MTUs): calibration reads their optimal fibre length, "
             "tendon slack length, max isometric force and pennation and models them with the "
             "DeGrooteFregly2016 curves; calibrated.osim keeps the model's muscle types",
             path.name, ", ".join(others), sum(len(types[t]) for t in others))


def write_calibrated_osim(scaled_osim: str | Path, target: str | Path,
                          per_mtu: Mapping[str, Mapping[str, float]], *,
                          bodies: Mapping[str, Any] | None = None) -> None:
    """Copy the scaled model with calibrated l0, l_ts and Fmax (x strength) for each MTU.

    ``per_mtu[name]`` holds ``optimal_fiber_length_m``, ``tendon_slack_length_m``,
    ``max_isometric_force_n`` and optionally ``damping`` (set as ``fiber_damping`` on
    DeGrooteFregly2016 muscles). ``bodies[name]`` (method motion): 10 values, mass (kg), centre
    of mass (m, body frame) and inertia about it (xx, yy, zz, xy, xz, yz; kg m^2).
    """
    if not bodies and _write_calibrated_xml(Path(scaled_osim), Path(target), per_mtu):
        return
    import opensim

    model = opensim.Model(str(scaled_osim))
    muscles = model.getMuscles()
    for name, values in per_mtu.items():
        muscle = muscles.get(name)
        muscle.setOptimalFiberLength(float(values["optimal_fiber_length_m"]))
        muscle.setTendonSlackLength(float(values["tendon_slack_length_m"]))
        muscle.setMaxIsometricForce(float(values["max_isometric_force_n"]))
        if "damping" in values:
            dgf = opensim.DeGrooteFregly2016Muscle.safeDownCast(muscle)
            if dgf is not None:
                dgf.set_fiber_damping(float(values["damping"]))
    body_set = model.getBodySet()
    for name, v in (bodies or {}).items():
        body = body_set.get(name)
        body.setMass(float(v[0]))
        body.setMassCenter(opensim.Vec3(float(v[1]), float(v[2]), float(v[3])))
        body.setInertia(opensim.Inertia(*(float(x) for x in v[4:10])))
    model.finalizeConnections()
    with atomic_path(target) as tmp:
        if not model.printToXML(str(tmp)):
            raise ModelError(describe(target, "OpenSim could not write the calibrated model",
                                      "check disk space and permissions"))


def _write_calibrated_xml(scaled_osim: Path, target: Path,
                          per_mtu: Mapping[str, Mapping[str, float]]) -> bool:
    """:func:`write_calibrated_osim` by editing the model file's XML (the same elements OpenSim's
    setters change; no OpenSim import and load); False, writing nothing, where the XML does not
    state every value to replace (OpenSim then writes the model)."""
    tree = _parse_osim(scaled_osim)
    elements = _xml_muscles(tree, list(per_mtu))
    if elements is None:
        return False
    keys = {"optimal_fiber_length_m": "optimal_fiber_length",
            "tendon_slack_length_m": "tendon_slack_length",
            "max_isometric_force_n": "max_isometric_force"}
    changes = []
    for name, values in per_mtu.items():
        element = elements[name]
        changes += [(element.find(tag), values[key]) for key, tag in keys.items()]
        if "damping" in values and element.tag == "DeGrooteFregly2016Muscle":
            damping = element.find("fiber_damping")
            if damping is None:
                return False
            changes.append((damping, values["damping"]))
    for child, value in changes:
        child.text = repr(float(value))
    with atomic_path(target) as tmp:
        tree.write(tmp, encoding="UTF-8", xml_declaration=True)
    return True


def _entry(value: float, initial: float, lower: float, upper: float, units: str,
           se: float | None) -> dict[str, Any]:
    tol = AT_BOUND_FRACTION * (upper - lower)
    return {"value": float(value), "initial": float(initial), "lower": float(lower),
            "upper": float(upper), "at_bound": bool(value - lower <= tol or upper - value <= tol),
            "se": None if se is None or not np.isfinite(se) else float(se), "units": units}


def parameters_document(spec: ParameterSpec, p: np.ndarray, *, method: str, tendon: str,
                        standard_errors: np.ndarray | None = None,
                        identifiability: dict | None = None,
                        provenance: dict | None = None, **extra: Any) -> dict[str, Any]:
    """The ``parameters.json`` document for free physical parameters ``p`` (spec order)."""
    value = spec.per_mtu(p)
    initial = spec.per_mtu(spec.initial)
    se_per = {k: np.full(len(spec.mtu_names), np.nan) for k in KINDS}
    bounds = {}
    slices = spec.slices()
    for kind in KINDS:
        b = spec.blocks[kind]
        bounds[kind] = (b.lower[b.index], b.upper[b.index])
        if standard_errors is not None and kind in slices:
            se_entry = np.full(len(b.entry_names), np.nan)
            se_entry[b.free_mask] = np.asarray(standard_errors)[slices[kind]]
            se_per[kind] = se_entry[b.index]
    fmax = spec.muscles.max_isometric_force_n
    mtus: dict[str, Any] = {}
    for i, name in enumerate(spec.mtu_names):
        entry: dict[str, Any] = {}
        for kind in ("optimal_fiber_length", "tendon_slack_length", "strength", "c1", "c2",
                     "shape_factor", "damping"):
            key, units = JSON_KEYS[kind]
            entry[key] = _entry(value[kind][i], initial[kind][i], bounds[kind][0][i],
                                bounds[kind][1][i], units, se_per[kind][i])
            block = spec.blocks[kind]
            entry[key]["calibrated"] = bool(block.free_mask[block.index[i]])
        s = entry["strength_coefficient"]
        entry["max_isometric_force_n"] = {
            **_entry(fmax[i] * s["value"], fmax[i] * s["initial"], fmax[i] * s["lower"],
                     fmax[i] * s["upper"], "N", None if s["se"] is None else fmax[i] * s["se"]),
            "generic_n": float(fmax[i]), "calibrated": s["calibrated"]}
        entry["pennation_at_optimal_rad"] = {
            "value": float(spec.muscles.pennation_angle_rad[i]), "units": "rad",
            "calibrated": False}
        mtus[name] = entry
    at_bound = [f"{m}.{k}" for m, e in mtus.items() for k, v in e.items()
                if v.get("calibrated") and v.get("at_bound") and k != "max_isometric_force_n"]
    return {"method": method, "tendon": tendon, "mtus": mtus,
            "groups": {g: list(members) for g, members in spec.groups.items()},
            "at_bound": at_bound, "identifiability": identifiability or {},
            "provenance": provenance or {}, **extra}


def provenance(config: Mapping[str, Any], *, seed: int,
               inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """:func:`pipeline.provenance.provenance` plus the contract's ``input_sha256`` key."""
    from pipeline.provenance import provenance as base_provenance

    record = base_provenance(config, seed=seed, inputs=[p for p in inputs if Path(p).exists()])
    record["input_sha256"] = dict(record.get("inputs", {}))
    if record.get("git_commit") is None:
        record.pop("git_commit", None)
    return record


def write_parameters(path: str | Path, document: Mapping[str, Any]) -> None:
    write_json_atomic(path, document)


def read_parameters(path: str | Path) -> dict[str, Any]:
    from pipeline.errors import CalibrationError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(describe(path, f"cannot read calibrated parameters ({exc})",
                                        "rerun the calibrate step")) from exc


def log_at_bound(document: Mapping[str, Any]) -> None:
    for item in document.get("at_bound", []):
        log.warning("calibrated parameter at a bound: %s (consider widening calibration.bounds)",
                    item)
