"""What a study check needs from a C3D file: rates, duration, labels.

ezc3d decodes the file, so Intel, DEC (VAX floats, whose 16-bit halves are swapped and whose
exponent is offset by 2) and MIPS (big-endian) files all read the same; a hand-written header
reader would have to know each processor's float format.

Decoding a file reads all of it (a lab's session of C3D files with 2 kHz analog EMG is many
megabytes), and every ``run``, dry run and workflow start checks the study's files. So
:func:`cached_summary` remembers each summary in the project's cache folder
(:func:`pipeline.fileio.user_cache_dir`), keyed by the file's resolved path, modification time
(ns) and size (:func:`pipeline.fileio.file_stamp`): a changed file is decoded again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Bumped when :class:`C3DSummary` or how it is read changes (older cache entries are ignored).
SUMMARY_VERSION = 1


@dataclass(frozen=True)
class C3DSummary:
    """Rates in Hz, frame range and labels of one C3D file."""

    path: Path
    point_rate_hz: float
    analog_rate_hz: float
    n_frames: int
    first_frame: int
    marker_labels: tuple[str, ...]
    analog_labels: tuple[str, ...]
    has_marker_data: bool  #: some marker sample is present (neither NaN nor exactly zero)

    @property
    def start_s(self) -> float:
        """C3D time of the first frame."""
        return self.first_frame / self.point_rate_hz if self.point_rate_hz > 0 else 0.0

    @property
    def end_s(self) -> float:
        """C3D time of the last frame."""
        if self.point_rate_hz <= 0 or self.n_frames == 0:
            return self.start_s
        return self.start_s + (self.n_frames - 1) / self.point_rate_hz


def _labels(params: dict, group: str, names: tuple[str, ...], count: int) -> tuple[str, ...]:
    labels: list[str] = []
    for name in names:
        try:
            labels += [str(v).strip() for v in params[group][name]["value"]]
        except KeyError:
            continue
    return tuple(labels[:count])


def read_summary(path: str | Path) -> C3DSummary:
    """Summary of ``path``; raises :class:`~pipeline.errors.C3DError` for an unreadable file."""
    from pipeline.io.c3d import load_checked

    path = Path(path)
    c3d = load_checked(path)
    params = c3d["parameters"]
    points = np.asarray(c3d["data"]["points"])
    analogs = np.asarray(c3d["data"]["analogs"])
    n_markers = points.shape[1] if points.ndim == 3 else 0
    n_analogs = analogs.shape[1] if analogs.ndim == 3 else 0
    header = c3d["header"]
    return C3DSummary(
        path=path,
        point_rate_hz=float(header["points"]["frame_rate"] or 0.0),
        analog_rate_hz=float(header["analogs"]["frame_rate"] or 0.0),
        n_frames=int(points.shape[2]) if points.ndim == 3 else 0,
        first_frame=int(header["points"].get("first_frame", 0)),
        marker_labels=_labels(params, "POINT", ("LABELS", "LABELS2", "LABELS3", "LABELS4"),
                              n_markers),
        analog_labels=_labels(params, "ANALOG", ("LABELS", "LABELS2", "LABELS3"), n_analogs),
        has_marker_data=bool(n_markers and np.any(np.isfinite(points[:3]) & (points[:3] != 0))),
    )


def cached_summary(path: str | Path) -> C3DSummary:
    """:func:`read_summary`, remembered in the cache folder by the file's path, modification
    time and size (module docstring). A cache that cannot be read or written only costs the
    decoding; errors of an unreadable file are raised, never cached."""
    from pipeline.fileio import cache_entry, file_stamp, write_json_atomic

    path = Path(path)
    stamp = file_stamp(path)
    if stamp is None:
        return read_summary(path)
    entry = cache_entry("c3d-summaries", json.dumps([SUMMARY_VERSION, stamp]), suffix=".json")
    try:
        fields = json.loads(entry.read_text(encoding="utf-8"))
        return C3DSummary(**{**fields, "path": path,
                             "marker_labels": tuple(fields["marker_labels"]),
                             "analog_labels": tuple(fields["analog_labels"])})
    except (OSError, ValueError, TypeError, KeyError):
        pass  # not cached yet (or an unreadable entry): decode
    summary = read_summary(path)
    fields = {k: v for k, v in dataclasses.asdict(summary).items() if k != "path"}
    try:
        write_json_atomic(entry, fields)
    except OSError as exc:
        log.debug("C3D summary of %s not cached (%s)", path, exc)
    return summary
