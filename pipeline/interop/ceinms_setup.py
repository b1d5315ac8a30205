"""CEINMScalibrate 0.9 inputs from the project's NMS inputs and calibration settings.

Writes, per trial, CEINMS's ``inputData`` XML and its storage files (MTU lengths, one moment-arm
file per DOF, excitations, ID moments as ``<dof>_moment``), and per calibration the
``calibration`` XML (simulated annealing settings, tendon, DOFs, parameter set with CEINMS's
sharing: ``single`` / ``global`` / ``muscleGroups`` and ``absolute`` /
``relativeToSubjectValue`` ranges) and the ``ceinmsCalibration`` set-up XML. CEINMS reads the
storage headers' ``nRows=`` / ``nColumns=`` lines literally, so they start their lines.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.calibrate.spec import ParameterSpec
from pipeline.fileio import write_text_atomic
from pipeline.interop.ceinms_subject import fmt, text_element, xml_document
from pipeline.io.nms_inputs import NMSTrial
from pipeline.io.opensim_files import StoTable, write_sto

#: Project kind -> CEINMS parameter name.
PARAMETER_NAMES = {"c1": "c1", "c2": "c2", "shape_factor": "shapeFactor",
                   "optimal_fiber_length": "optimalFibreLength",
                   "tendon_slack_length": "tendonSlackLength", "strength": "strengthCoefficient",
                   "damping": "damping"}
TENDONS = {"stiff": "stiff", "elastic": "equilibriumElastic"}


def write_storage_columns(path: Path, name: str, time_s: np.ndarray, columns: Sequence[str],
                          data: np.ndarray) -> None:
    """A storage file CEINMS reads, every double written exactly; ``data`` is
    ``(column, time)``."""
    write_sto(path, StoTable(np.asarray(time_s, dtype=float), tuple(columns),
                             np.asarray(data, dtype=float).T, name=name),
              float_format="%.17g")


def write_trial(folder: str | Path, trial: NMSTrial, *, excitation_time_s: np.ndarray | None = None,
                excitation: np.ndarray | None = None) -> Path:
    """Write one trial's files into ``folder``; returns its ``inputData`` XML path.

    The excitation file has one column per MTU (pair it with an identity excitation generator);
    ``excitation_time_s`` / ``excitation`` ``(muscle, time)`` replace the trial's own, e.g. to
    start the excitations earlier than the MTU data (CEINMS runs the activation dynamics over the
    excitation rows before the first MTU sample).
    """
    folder = Path(folder)
    mtus = list(trial.mtu_names)
    files = {"lmt": "mtu_length.sto", "emg": "excitations.sto", "id": "id_moments.sto"}
    write_storage_columns(folder / files["lmt"], "MTU lengths", trial.time_s, mtus,
                          trial.mtu_length_m)
    for d, dof in enumerate(trial.dof_names):
        write_storage_columns(folder / f"moment_arm_{dof}.sto", f"Moment arms about {dof}",
                              trial.time_s, mtus, trial.moment_arm_m[:, d])
    exc_t = trial.time_s if excitation_time_s is None else excitation_time_s
    exc = trial.excitation if excitation is None else excitation
    write_storage_columns(folder / files["emg"], "Excitations", exc_t, mtus, exc)
    write_storage_columns(folder / files["id"], "Inverse dynamics", trial.time_s,
                          [f"{d}_moment" for d in trial.dof_names], trial.id_moment_nm)
    root = ET.Element("inputData")
    text_element(root, "muscleTendonLengthFile", files["lmt"])
    arms = ET.SubElement(root, "momentArmsFiles")
    for dof in trial.dof_names:
        text_element(arms, "momentArmsFile", f"moment_arm_{dof}.sto", dofName=dof)
    text_element(root, "excitationsFile", files["emg"])
    text_element(root, "externalTorquesFile", files["id"])
    path = folder / "trial.xml"
    write_text_atomic(path, xml_document(root, "inputData.xsd"))
    return path


def calibration_xml(spec: ParameterSpec, calibration: Mapping[str, Any], *,
                    dofs: Sequence[str], trial_files: Sequence[str]) -> str:
    """The ``calibration`` XML of ``spec``'s free parameters with ``calibration``'s bounds,
    annealing settings (``calibration.annealing``) and tendon."""
    root = ET.Element("calibration")
    annealing = calibration.get("annealing", {})
    sa = ET.SubElement(ET.SubElement(root, "algorithm"), "simulatedAnnealing")
    for tag, key, cast in (("noEpsilon", "n_eps", int), ("rt", "rt", float), ("T", "t0", float),
                           ("NS", "ns", int), ("NT", "nt", int), ("epsilon", "eps", float),
                           ("maxNoEval", "max_evaluations", int)):
        value = cast(annealing[key])
        text_element(sa, tag, str(value) if cast is int else fmt(value))
    model = ET.SubElement(root, "NMSmodel")
    ET.SubElement(ET.SubElement(model, "type"), "openLoop")
    ET.SubElement(ET.SubElement(model, "tendon"), TENDONS[calibration.get("tendon", "stiff")])
    ET.SubElement(ET.SubElement(model, "activation"), "exponential")
    step = ET.SubElement(ET.SubElement(root, "calibrationSteps"), "step")
    text_element(step, "dofs", " ".join(dofs))
    ET.SubElement(ET.SubElement(step, "objectiveFunction"), "minimizeTorqueError")
    parameters = ET.SubElement(step, "parameterSet")
    bounds = calibration.get("bounds", {})
    for kind in spec.free_kinds:
        block = spec.blocks[kind]
        element = ET.SubElement(parameters, "parameter")
        text_element(element, "name", PARAMETER_NAMES[kind])
        if block.entry_names == ("global",):
            ET.SubElement(element, "global")
        elif len(block.entry_names) == len(spec.mtu_names):
            ET.SubElement(element, "single")
        else:
            groups = ET.SubElement(element, "muscleGroups")
            for e in range(len(block.entry_names)):
                members = [m for i, m in enumerate(spec.mtu_names) if block.index[i] == e]
                text_element(groups, "muscles", " ".join(members))
        bound = bounds[kind]
        kind_range = "relativeToSubjectValue" if bound.get("relative", False) else "absolute"
        text_element(ET.SubElement(element, kind_range), "range",
              f"{fmt(bound['lower'])} {fmt(bound['upper'])}")
    text_element(root, "trialSet", " ".join(trial_files))
    return xml_document(root, "calibration.xsd")


def calibration_setup_xml(*, subject_file: str, excitation_generator_file: str,
                          calibration_file: str, output_subject_file: str) -> str:
    root = ET.Element("ceinmsCalibration")
    text_element(root, "subjectFile", subject_file)
    text_element(root, "excitationGeneratorFile", excitation_generator_file)
    text_element(root, "calibrationFile", calibration_file)
    text_element(root, "outputSubjectFile", output_subject_file)
    return xml_document(root, "ceinmsCalibrationSetup.xsd")
