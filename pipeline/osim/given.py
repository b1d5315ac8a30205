"""OpenSim files a study gives (DESIGN.md, "Entering from OpenSim files"): check, then place them.

Each function reads a lab's file, checks what the later stages rely on (header units, column
names, value ranges) and writes it to its contract path atomically, or raises the stage's error
naming the file, the cause and the fix. Files are read with OpenSim's own ``Storage`` (any header
version, state-path labels such as ``/jointset/knee_r/knee_angle_r/value``).

=======================  ===============================  =====================================
function                 writes                           checks
=======================  ===============================  =====================================
``place_model``          ``model/scaled.osim`` (copy)     loads; MTUs and coordinates exist
``place_markers``        ``markers.trc`` (copy)           a TRC with units and markers
``place_grf``            ``grf.mot`` + ``external_loads``  every column the XML names is there
``place_coordinates``    ``ik.mot`` (version-1 .mot)      ``inDegrees`` in the header; the dofs
``place_moments``        ``id.sto`` (copy)                ``<dof>_moment``/``_force`` columns
``place_envelopes``      ``emg.sto``                      EMG names; envelopes within [0, 1]
=======================  ===============================  =====================================
"""

from __future__ import annotations

import difflib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from pipeline.errors import (
    ConfigError,
    IDError,
    IKError,
    ModelError,
    PipelineError,
    describe,
)
from pipeline.fileio import atomic_path, write_text_atomic
from pipeline.io.opensim_files import StoTable, read_sto, write_sto
from pipeline.osim.model_io import coordinate_names, load_model, muscle_names

log = logging.getLogger(__name__)

#: Envelopes may dip this far below zero (filter undershoot) before they are refused.
ENVELOPE_UNDERSHOOT = 0.1
#: Envelopes above 1 by more than this are not normalised.
ENVELOPE_OVERSHOOT = 1e-6


def _copy(src: Path, out: Path) -> None:
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=2)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def header_fields(path: str | Path) -> dict[str, str]:
    """``key=value`` lines of an OpenSim table header (before ``endheader``), keys lowercased."""
    fields: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip().lower() == "endheader":
                break
            if "=" in line:
                key, _, value = line.partition("=")
                fields[key.strip().lower()] = value.strip()
    return fields


def place_model(src: str | Path, out: str | Path, *, mtus: Sequence[str],
                dofs: Sequence[str]) -> None:
    """Copy a scaled ``.osim`` after checking it loads and has the configured MTUs and dofs."""
    src = Path(src)
    model = load_model(src, error_cls=ModelError,
                       fix="give a valid scaled .osim in subjects.tsv column scaled_model")
    known_mtus, known_coords = muscle_names(model), coordinate_names(model)
    problems = [f"MTU {m!r} is not a muscle of the model{_suggest(m, known_mtus)}"
                for m in mtus if m not in known_mtus]
    problems += [f"coordinate {c!r} is not in the model{_suggest(c, known_coords)}"
                 for c in dofs if c not in known_coords]
    if problems:
        raise ConfigError(describe(src, "; ".join(problems), "use the model's names in "
                                   "models.<model>.excitations and dofs in config.yaml"))
    _copy(src, Path(out))


def place_markers(src: str | Path, out: str | Path) -> None:
    """Copy a ``.trc`` after checking it reads (data rate, units, marker names)."""
    from pipeline.io.opensim_files import OpenSimFileError, read_trc

    src = Path(src)
    try:
        table = read_trc(src)
    except (OpenSimFileError, OSError, UnicodeDecodeError) as exc:
        raise IKError(describe(src, f"not a readable TRC file ({exc})", "export the markers "
                               "as an OpenSim .trc (header with DataRate and Units)")) from exc
    if not table.labels or len(table.times_s) < 2:
        raise IKError(describe(src, "has no markers or fewer than 2 frames",
                               "export the whole trial's markers"))
    _copy(src, Path(out))


def place_grf(mot_src: str | Path, xml_src: str | Path, *, mot_out: str | Path,
              xml_out: str | Path) -> None:
    """Copy the GRF ``.mot`` and write the ExternalLoads XML pointing at it (``datafile``).

    Every force, point and torque identifier of the XML's ExternalForces must name three
    columns (``<identifier>x``, ``y``, ``z``) of the GRF file.
    """
    mot_src, xml_src = Path(mot_src), Path(xml_src)
    fix = "give the ExternalLoads .xml that belongs to this GRF file"
    try:
        tree = ET.parse(xml_src)
    except (ET.ParseError, OSError) as exc:
        raise IDError(describe(xml_src, f"not a readable XML file ({exc})", fix)) from exc
    loads = tree.getroot().find("ExternalLoads")
    forces = loads.findall("./objects/ExternalForce") if loads is not None else []
    if loads is None or not forces:
        raise IDError(describe(xml_src, "has no ExternalLoads with ExternalForce objects", fix))
    grf = read_sto(mot_src, error_cls=IDError, fix="give the GRF as an OpenSim .mot",
                   require_rows=True, state_values=True)
    missing = []
    for force in forces:
        for tag in ("force_identifier", "point_identifier", "torque_identifier"):
            ident = (force.findtext(tag) or "").strip()
            if not ident:
                continue
            absent = [f"{ident}{a}" for a in "xyz" if f"{ident}{a}" not in grf.labels]
            missing += absent
    if missing:
        raise IDError(describe(mot_src, f"lacks the column(s) {', '.join(missing)} that "
                               f"{xml_src.name} names (columns: {', '.join(grf.labels)})", fix))
    datafile = loads.find("datafile")
    if datafile is None:
        datafile = ET.SubElement(loads, "datafile")
    datafile.text = Path(mot_out).name
    kinematics = loads.find("external_loads_model_kinematics_file")
    if kinematics is not None:
        kinematics.text = ""
    for force in forces:
        source = force.find("data_source_name")
        if source is not None:
            source.text = Path(mot_out).name
    _copy(mot_src, Path(mot_out))
    text = ET.tostring(tree.getroot(), encoding="unicode")
    write_text_atomic(xml_out, f'<?xml version="1.0" encoding="UTF-8" ?>\n{text}\n')


def place_coordinates(src: str | Path, out: str | Path, *, dofs: Sequence[str]) -> None:
    """Write IK coordinates as a version-1 ``.mot`` with coordinate names as columns.

    The header must say ``inDegrees=yes`` or ``no`` (angles are ambiguous otherwise); the values
    keep their units and the flag.
    """
    src = Path(src)
    flag = header_fields(src).get("indegrees", "").lower()
    if flag not in ("yes", "no"):
        raise IKError(describe(src, "the header does not say inDegrees=yes or inDegrees=no, so "
                               "the angle units are unknown", "add the line inDegrees=yes "
                               "(or no, for radians) before endheader"))
    table = read_sto(src, error_cls=IKError, fix="give IK coordinates as an OpenSim .mot/.sto",
                     require_rows=True, state_values=True)
    _check_columns(src, table.labels, dofs, IKError, "coordinate")
    write_sto(out, replace(table, name="ik", in_degrees=flag == "yes"), float_format="%.12g")


def place_moments(src: str | Path, out: str | Path, *, dofs: Sequence[str]) -> None:
    """Copy an ID ``.sto`` after checking it has ``<dof>_moment`` (or ``_force``) per dof."""
    src = Path(src)
    table = read_sto(src, error_cls=IDError, fix="give ID generalized forces as a .sto",
                     require_rows=True, state_values=True)
    missing = [d for d in dofs
               if f"{d}_moment" not in table.labels and f"{d}_force" not in table.labels]
    if missing:
        raise IDError(describe(src, f"no column {', '.join(f'{d}_moment' for d in missing)} "
                               f"(columns: {', '.join(table.labels[:12])}"
                               f"{', ...' if len(table.labels) > 12 else ''})",
                               "give the ID output of the same model, or correct "
                               "models.<model>.dofs"))
    _copy(src, Path(out))


def place_envelopes(src: str | Path, out: str | Path, *, emg_names: Sequence[str]) -> None:
    """Write the envelopes of ``emg_names`` as ``emg.sto``, already normalised to [0, 1].

    Small negative values (filter undershoot, down to -0.1) are set to 0; values above 1 are
    refused (not normalised envelopes).
    """
    src = Path(src)
    if not emg_names:
        raise ConfigError(describe(src, "no EMG envelope is left to read (every EMG name of "
                                   "models.<model>.excitations is in drop_emg)",
                                   "keep at least one EMG channel, or give the trial no "
                                   "emg_file"))
    table = read_sto(src, error_cls=ConfigError, fix="give EMG envelopes as an OpenSim .sto",
                     require_rows=True, state_values=True)
    _check_columns(src, table.labels, emg_names, ConfigError, "EMG")
    values = np.column_stack([table.column(n) for n in emg_names])
    peak, low = float(np.nanmax(values)), float(np.nanmin(values))
    if not np.isfinite(values).all():
        raise ConfigError(describe(src, "EMG envelopes contain NaN or infinite values",
                                   "fill the gaps before giving the file"))
    if peak > 1.0 + ENVELOPE_OVERSHOOT or low < -ENVELOPE_UNDERSHOOT:
        raise ConfigError(describe(src, f"EMG envelopes span [{low:.4g}, {peak:.4g}], not [0, 1]"
                                   " (emg.input is envelope: normalised envelopes)",
                                   "normalise the envelopes (e.g. by MVC), or set emg.input: raw"
                                   " in config.yaml to process raw EMG"))
    if low < 0.0:
        log.info("%s: envelopes dip to %.4g; set to 0", src, low)
    write_sto(out, StoTable(table.time_s, tuple(emg_names), np.clip(values, 0.0, 1.0),
                            name="emg"), float_format="%.12g")


def raw_emg_table(src: str | Path, *, emg_names: Sequence[str],
                  optional_names: Sequence[str] = ()) -> tuple[StoTable, float]:
    """Raw EMG columns ``emg_names`` of a ``.sto`` and its sample rate (uniform sampling).

    ``optional_names`` (e.g. channels dropped by ``drop_emg``) are added after ``emg_names``
    where the file has them, and are not required.
    """
    src = Path(src)
    table = read_sto(src, error_cls=ConfigError, fix="give raw EMG as an OpenSim .sto",
                     require_rows=True, state_values=True)
    _check_columns(src, table.labels, emg_names, ConfigError, "EMG")
    steps = np.diff(table.time_s)
    if len(steps) < 2 or steps.min() <= 0 or steps.max() - steps.min() > 1e-3 * steps.mean():
        raise ConfigError(describe(src, "raw EMG is not uniformly sampled",
                                   "resample it to a constant rate before giving it"))
    names = [*emg_names, *(n for n in optional_names
                           if n in table.labels and n not in emg_names)]
    values = np.column_stack([table.column(n) for n in names])
    return StoTable(table.time_s, tuple(names), values), float(1.0 / steps.mean())


def _check_columns(src: Path, labels: Sequence[str], wanted: Sequence[str],
                   error_cls: type[PipelineError], what: str) -> None:
    missing = [w for w in wanted if w not in labels]
    if missing:
        hints = "; ".join(f"{m!r}{_suggest(m, labels)}" for m in missing)
        raise error_cls(describe(src, f"no {what} column {hints} (columns: "
                                 f"{', '.join(labels[:15])}{', ...' if len(labels) > 15 else ''})",
                                 f"give the file with these {what} columns, or correct the names "
                                 "in config.yaml (models.<model>)"))
