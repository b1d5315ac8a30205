"""Marker processing: fill short gaps, zero-lag low-pass, rotate into the OpenSim frame."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pipeline.io.c3d import C3DRecording
from pipeline.io.opensim_files import MarkerTable
from pipeline.signals.filters import butter_lowpass
from pipeline.signals.frames import lab_to_opensim, rotate
from pipeline.signals.gaps import edge_missing, fill_gaps

log = logging.getLogger(__name__)


def process_markers(recording: C3DRecording, /, *, lab_frame: Mapping[str, str],
                    cutoff_hz: float, filter_order: int = 4, correct_double_pass: bool = True,
                    max_gap_s: float = 0.1, long_gap: str = "error") -> MarkerTable:
    """Markers of ``recording`` gap-filled, filtered and expressed in the OpenSim frame."""
    markers = recording.markers
    xyz = fill_gaps(markers.xyz_m, markers.labels, rate_hz=markers.rate_hz, max_gap_s=max_gap_s,
                    long_gap=long_gap, first_time_s=recording.first_time_s, file=recording.path)
    missing = edge_missing(xyz, markers.labels)
    if missing:
        log.info("%s: markers missing at the start/end of the trial (left as NaN): %s",
                 recording.path, ", ".join(f"{k} ({v} frames)" for k, v in missing.items()))
    n_frames = xyz.shape[0]
    filtered = butter_lowpass(xyz.reshape(n_frames, -1), cutoff_hz, rate_hz=markers.rate_hz,
                              order=filter_order, correct_double_pass=correct_double_pass)
    xyz_os = rotate(filtered.reshape(xyz.shape), lab_to_opensim(lab_frame))
    return MarkerTable(markers.labels, recording.marker_times_s, xyz_os, markers.rate_hz)
