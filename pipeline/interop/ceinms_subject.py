"""CEINMS 0.9 subject XML (``subject.xsd``) and excitation-generator XML
(``excitationGenerator.xsd``): read into plain dataclasses, write back.

Units are CEINMS's: metres, newtons, seconds; ``pennationAngle`` may carry ``unit="deg"`` (read
as radians here; written in radians). ``c1``, ``c2`` and ``shapeFactor`` follow the same
conventions as the project (``beta1 = C1 + C2``, ``beta2 = C1 C2``; ``A`` in (-3, 0)).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, describe
from pipeline.fileio import write_text_atomic

#: The four curves of ``mtuDefault``, in CEINMS's order.
CURVE_NAMES = ("activeForceLength", "passiveForceLength", "forceVelocity", "tendonForceStrain")
#: Required per-MTU elements (XML name -> attribute of :class:`CeinmsMtu`), in schema order.
_MTU_FIELDS = {"c1": "c1", "c2": "c2", "shapeFactor": "shape_factor",
               "optimalFibreLength": "optimal_fiber_length_m",
               "pennationAngle": "pennation_angle_rad",
               "tendonSlackLength": "tendon_slack_length_m",
               "maxIsometricForce": "max_isometric_force_n",
               "strengthCoefficient": "strength_coefficient"}
_MTU_OPTIONAL = {"emDelay": "em_delay_s", "maxContractionVelocity": "max_contraction_velocity",
                 "damping": "damping"}


@dataclass(frozen=True)
class CeinmsMtu:
    """One ``mtu`` element. Optional elements are ``None`` when absent (defaults apply)."""

    name: str
    c1: float
    c2: float
    shape_factor: float
    optimal_fiber_length_m: float
    pennation_angle_rad: float
    tendon_slack_length_m: float
    max_isometric_force_n: float
    strength_coefficient: float
    em_delay_s: float | None = None
    max_contraction_velocity: float | None = None  #: optimal fibre lengths per second
    damping: float | None = None


@dataclass(frozen=True)
class CeinmsSubject:
    """A CEINMS subject: MTUs, the MTUs acting on each DOF, the defaults and curves."""

    mtus: tuple[CeinmsMtu, ...]
    dofs: dict[str, tuple[str, ...]]
    em_delay_s: float = 0.015
    percentage_change: float = 0.15
    damping: float = 0.1
    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    #: ``{"calibrated": {"start_subject_file": str, "calibration_sequence": [str]}}`` or
    #: ``{"uncalibrated": {"subject_id": str, "additional_info": str}}``
    calibration_info: dict = field(default_factory=lambda: {
        "uncalibrated": {"subject_id": "subject", "additional_info": ""}})

    @property
    def mtu_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.mtus)

    def mtu(self, name: str) -> CeinmsMtu:
        for m in self.mtus:
            if m.name == name:
                return m
        raise KeyError(name)

    def dofs_of(self, mtu_name: str) -> tuple[str, ...]:
        """DOFs the MTU spans (the ``dofSet`` entries naming it)."""
        return tuple(d for d, names in self.dofs.items() if mtu_name in names)


@dataclass(frozen=True)
class ExcitationGenerator:
    """CEINMS's excitation mapping: MTU -> ((input signal, weight), ...); empty = no EMG."""

    input_signals: tuple[str, ...]
    mapping: dict[str, tuple[tuple[str, float], ...]]
    signal_type: str | None = "EMG"

    def as_config(self) -> dict[str, dict[str, float]]:
        """The project's ``models.<model>.excitations`` form: MTU -> {EMG name: weight}."""
        return {mtu: dict(inputs) for mtu, inputs in self.mapping.items()}


# --- reading ----------------------------------------------------------------------------------
def _parse(path: Path, root_tag: str) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as exc:
        raise ConfigError(describe(path, "file not found", "check the path")) from exc
    except ET.ParseError as exc:
        raise ConfigError(describe(path, f"not well-formed XML ({exc})",
                                   "fix the file or write it again from CEINMS")) from exc
    if root.tag != root_tag:
        raise ConfigError(describe(path, f"root element is <{root.tag}>, not <{root_tag}>",
                                   f"pass a CEINMS {root_tag} file"))
    return root


def _child(path: Path, parent: ET.Element, tag: str, where: str) -> ET.Element:
    found = parent.find(tag)
    if found is None:
        raise ConfigError(describe(path, f"{where} has no <{tag}> element",
                                   f"add <{tag}> as CEINMS's subject.xsd requires"))
    return found


def _number(path: Path, element: ET.Element, where: str) -> float:
    text = (element.text or "").strip()
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(describe(path, f"{where}: {text!r} is not a number",
                                   "write a decimal number")) from exc
    if not math.isfinite(value):
        raise ConfigError(describe(path, f"{where}: {text!r} is not finite",
                                   "write a finite number"))
    return value


def _numbers(path: Path, element: ET.Element, where: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in (element.text or "").split())
    except ValueError as exc:
        raise ConfigError(describe(path, f"{where}: not a list of numbers",
                                   "write space-separated numbers")) from exc


def read_subject(path: str | Path) -> CeinmsSubject:
    """Read a CEINMS subject XML.

    Raises:
        ConfigError: missing elements, non-numbers, a DOF naming an MTU the file does not
            define, or a curve whose x and y lists differ in length.
    """
    path = Path(path)
    root = _parse(path, "subject")
    default = _child(path, root, "mtuDefault", "<subject>")
    curves = {}
    for curve in default.findall("curve"):
        name = (_child(path, curve, "name", "<curve>").text or "").strip()
        x = _numbers(path, _child(path, curve, "xPoints", f"curve {name}"), f"curve {name}")
        y = _numbers(path, _child(path, curve, "yPoints", f"curve {name}"), f"curve {name}")
        if len(x) != len(y) or len(x) < 2:
            raise ConfigError(describe(path, f"curve {name} has {len(x)} x and {len(y)} y points",
                                       "give at least two points, as many x as y"))
        curves[name] = (x, y)
    mtus = []
    for element in _child(path, root, "mtuSet", "<subject>").findall("mtu"):
        name = (_child(path, element, "name", "<mtu>").text or "").strip()
        values: dict[str, Any] = {}
        for tag, attr in _MTU_FIELDS.items():
            node = _child(path, element, tag, f"mtu {name}")
            value = _number(path, node, f"mtu {name} <{tag}>")
            if tag == "pennationAngle" and node.get("unit", "rad") == "deg":
                value = math.radians(value)
            values[attr] = value
        for tag, attr in _MTU_OPTIONAL.items():
            optional = element.find(tag)
            values[attr] = (None if optional is None
                            else _number(path, optional, f"mtu {name} <{tag}>"))
        mtus.append(CeinmsMtu(name=name, **values))
    if not mtus:
        raise ConfigError(describe(path, "<mtuSet> has no <mtu>", "define at least one MTU"))
    names = {m.name for m in mtus}
    dofs = {}
    for element in _child(path, root, "dofSet", "<subject>").findall("dof"):
        dof = (_child(path, element, "name", "<dof>").text or "").strip()
        members = tuple((_child(path, element, "mtuNameSet", f"dof {dof}").text or "").split())
        unknown = [m for m in members if m not in names]
        if unknown:
            raise ConfigError(describe(path, f"dof {dof} names MTU(s) {', '.join(unknown)} that "
                                       "<mtuSet> does not define",
                                       "add them to <mtuSet> or remove them from the DOF"))
        dofs[dof] = members
    info_element = _child(path, root, "calibrationInfo", "<subject>")
    info: dict = {}
    calibrated = info_element.find("calibrated")
    if calibrated is not None:
        info["calibrated"] = {
            "start_subject_file": (calibrated.findtext("startSubjectFile") or "").strip(),
            "calibration_sequence": (calibrated.findtext("calibrationSequence") or "").split()}
    else:
        uncal = info_element.find("uncalibrated")
        info["uncalibrated"] = {
            "subject_id": ((uncal.findtext("subjectID") if uncal is not None else "") or
                           "").strip(),
            "additional_info": ((uncal.findtext("additionalInfo") if uncal is not None else "")
                                or "").strip()}
    return CeinmsSubject(
        mtus=tuple(mtus), dofs=dofs,
        em_delay_s=_number(path, _child(path, default, "emDelay", "<mtuDefault>"), "emDelay"),
        percentage_change=_number(path, _child(path, default, "percentageChange",
                                               "<mtuDefault>"), "percentageChange"),
        damping=_number(path, _child(path, default, "damping", "<mtuDefault>"), "damping"),
        curves=curves, calibration_info=info)


def read_excitation_generator(path: str | Path) -> ExcitationGenerator:
    """Read a CEINMS excitation-generator XML (``weight``; CEINMS's manual misspells it
    ``weigth`` in an example, which is read too)."""
    path = Path(path)
    root = _parse(path, "excitationGenerator")
    signals_element = _child(path, root, "inputSignals", "<excitationGenerator>")
    signals = tuple((signals_element.text or "").split())
    mapping = {}
    for element in _child(path, root, "mapping", "<excitationGenerator>").findall("excitation"):
        mtu = element.get("id", "").strip()
        inputs = []
        for node in element.findall("input"):
            name = (node.text or "").strip()
            weight = node.get("weight", node.get("weigth"))
            if name not in signals or weight is None:
                raise ConfigError(describe(
                    path, f"excitation {mtu}: input {name!r} "
                    + ("has no weight" if weight is None else "is not in <inputSignals>"),
                    "list every input in <inputSignals> and give it a weight attribute"))
            inputs.append((name, float(weight)))
        mapping[mtu] = tuple(inputs)
    return ExcitationGenerator(signals, mapping, signals_element.get("type"))


# --- writing ----------------------------------------------------------------------------------
def fmt(value: float) -> str:
    return repr(float(value))


def text_element(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = text
    return element


def xml_document(root: ET.Element, schema: str) -> str:
    root.set("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
    root.set("xsi:noNamespaceSchemaLocation", schema)
    ET.indent(root, space="  ")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            + ET.tostring(root, encoding="unicode") + "\n")


def subject_xml(subject: CeinmsSubject) -> str:
    """The subject as CEINMS subject XML text (schema order)."""
    root = ET.Element("subject")
    default = ET.SubElement(root, "mtuDefault")
    text_element(default, "emDelay", fmt(subject.em_delay_s))
    text_element(default, "percentageChange", fmt(subject.percentage_change))
    text_element(default, "damping", fmt(subject.damping))
    for name in (*[c for c in CURVE_NAMES if c in subject.curves],
                 *[c for c in subject.curves if c not in CURVE_NAMES]):
        x, y = subject.curves[name]
        curve = ET.SubElement(default, "curve")
        text_element(curve, "name", name)
        text_element(curve, "xPoints", " ".join(fmt(v) for v in x))
        text_element(curve, "yPoints", " ".join(fmt(v) for v in y))
    mtu_set = ET.SubElement(root, "mtuSet")
    for m in subject.mtus:
        element = ET.SubElement(mtu_set, "mtu")
        text_element(element, "name", m.name)
        if m.em_delay_s is not None:
            text_element(element, "emDelay", fmt(m.em_delay_s))
        for tag in ("c1", "c2", "shapeFactor", "optimalFibreLength", "pennationAngle",
                    "tendonSlackLength"):
            text_element(element, tag, fmt(getattr(m, _MTU_FIELDS[tag])))
        for tag in ("maxContractionVelocity", "damping"):
            value = getattr(m, _MTU_OPTIONAL[tag])
            if value is not None:
                text_element(element, tag, fmt(value))
        text_element(element, "maxIsometricForce", fmt(m.max_isometric_force_n))
        text_element(element, "strengthCoefficient", fmt(m.strength_coefficient))
    dof_set = ET.SubElement(root, "dofSet")
    for dof, names in subject.dofs.items():
        element = ET.SubElement(dof_set, "dof")
        text_element(element, "name", dof)
        text_element(element, "mtuNameSet", " ".join(names))
    calibrated = "calibrated" in subject.calibration_info
    info = ET.SubElement(ET.SubElement(root, "calibrationInfo"),
                         "calibrated" if calibrated else "uncalibrated")
    if calibrated:
        cal = subject.calibration_info["calibrated"]
        text_element(info, "startSubjectFile", str(cal.get("start_subject_file", "")))
        text_element(info, "calibrationSequence", " ".join(cal.get("calibration_sequence", [])))
    else:
        uncal = subject.calibration_info.get("uncalibrated", {})
        text_element(info, "subjectID", str(uncal.get("subject_id", "subject")) or "subject")
        text_element(info, "additionalInfo", str(uncal.get("additional_info", "")))
    return xml_document(root, "subject.xsd")


def write_subject(path: str | Path, subject: CeinmsSubject) -> None:
    """Write ``subject`` as a CEINMS subject XML, atomically."""
    write_text_atomic(path, subject_xml(subject))


def excitation_generator(excitations: Mapping[str, Mapping[str, float]], *,
                         mtu_names: Sequence[str] | None = None,
                         signal_type: str = "EMG") -> ExcitationGenerator:
    """From the project's ``excitations`` mapping (MTU -> {EMG name: weight}); MTUs in
    ``mtu_names`` without an entry get an empty excitation (no EMG)."""
    names = list(mtu_names) if mtu_names is not None else list(excitations)
    names += [m for m in excitations if m not in names]
    mapping = {m: tuple((s, float(w)) for s, w in (excitations.get(m) or {}).items())
               for m in names}
    signals: list[str] = []
    for inputs in mapping.values():
        signals += [s for s, _ in inputs if s not in signals]
    return ExcitationGenerator(tuple(signals), mapping, signal_type)


def excitation_generator_xml(generator: ExcitationGenerator) -> str:
    root = ET.Element("excitationGenerator")
    attrib = {"type": generator.signal_type} if generator.signal_type else {}
    text_element(root, "inputSignals", " ".join(generator.input_signals), **attrib)
    mapping = ET.SubElement(root, "mapping")
    for mtu, inputs in generator.mapping.items():
        element = ET.SubElement(mapping, "excitation", {"id": mtu})
        for name, weight in inputs:
            text_element(element, "input", name, weight=fmt(weight))
    return xml_document(root, "excitationGenerator.xsd")


def write_excitation_generator(path: str | Path, generator: ExcitationGenerator) -> None:
    write_text_atomic(path, excitation_generator_xml(generator))
