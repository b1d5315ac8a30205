"""From a C3D recording to the per-foot GRF table OpenSim's ExternalLoads reads."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import C3DError, describe
from pipeline.io.c3d import C3DRecording
from pipeline.io.opensim_files import StoTable
from pipeline.osim.external_loads import grf_columns
from pipeline.signals.forceplates import (
    Contact,
    PlateWrench,
    assign_feet,
    foot_wrench,
    plate_wrenches,
)
from pipeline.signals.frames import lab_to_opensim

log = logging.getLogger(__name__)

# The GRF table is written at no less than this rate (after the low-pass).
GRF_MIN_RATE_HZ = 500.0
SIDES = {"right": "r", "left": "l"}


@dataclass(frozen=True)
class GroundReactions:
    table: StoTable  # per-foot columns, OpenSim frame
    wrenches: list[PlateWrench]  # per plate, lab frame, analog rate
    contacts: list[Contact]
    times_s: np.ndarray  # analog time base


def _foot_marker(recording: C3DRecording, names: Sequence[str]) -> np.ndarray | None:
    labels = [label.strip() for label in recording.markers.labels]
    for name in names:
        if name in labels:
            xyz = recording.markers.xyz_m[:, labels.index(name)]
            if np.isfinite(xyz).any():
                return xyz
    return None


def foot_trajectories(recording: C3DRecording, foot_markers: Mapping[str, Sequence[str]],
                      ) -> dict[str, np.ndarray | None]:
    """"left"/"right" -> the first of ``foot_markers[foot]`` the recording has (lab frame), or
    None: the markers :func:`~pipeline.signals.forceplates.assign_feet` compares plates with."""
    return {f: _foot_marker(recording, foot_markers.get(f, ())) for f in SIDES}


def ground_reactions(recording: C3DRecording, /, *, lab_frame: Mapping[str, str],
                     threshold_n: float, cutoff_hz: float | None, filter_order: int = 4,
                     correct_double_pass: bool = True,
                     foot_markers: Mapping[str, Sequence[str]] | None = None,
                     assignment: Mapping[str, str] | None = None,
                     min_rate_hz: float = GRF_MIN_RATE_HZ) -> GroundReactions:
    """Per-foot GRF (force, point, free-moment torque) in the OpenSim frame.

    ``assignment`` overrides the automatic plate -> foot choice ({"1": "right", ...}).
    Raises :class:`C3DError` when the recording has no force plates.
    """
    if not recording.plates:
        raise C3DError(describe(recording.path, "force plates are required for this model "
                                "(models.<model>.force_plates: true) but the file has none",
                                "export the trial with its force plates, or set force_plates: "
                                "false for the model"))
    wrenches = plate_wrenches(recording, threshold_n=threshold_n, cutoff_hz=cutoff_hz,
                              filter_order=filter_order, correct_double_pass=correct_double_pass)
    times = recording.analog_times_s
    feet = foot_markers or {}
    contacts = assign_feet(
        wrenches, foot_xyz_m=foot_trajectories(recording, feet),
        marker_times_s=recording.marker_times_s, analog_times_s=times, override=assignment,
        file=recording.path)
    rotation = lab_to_opensim(lab_frame)
    step = max(1, int(recording.analogs.rate_hz // min_rate_hz))
    labels: list[str] = []
    blocks = []
    for foot, side in SIDES.items():
        w = foot_wrench(wrenches, contacts, foot, rotation=rotation)
        blocks += [w["force_n"][::step], w["point_m"][::step], w["torque_nm"][::step]]
        labels += grf_columns(side)
    table = StoTable(times[::step], tuple(labels), np.column_stack(blocks), name="grf")
    return GroundReactions(table, wrenches, contacts, times)
