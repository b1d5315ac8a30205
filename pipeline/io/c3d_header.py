"""What a study check needs from a C3D file: rates, duration, labels.

ezc3d decodes the file, so Intel, DEC (VAX floats, whose 16-bit halves are swapped and whose
exponent is offset by 2) and MIPS (big-endian) files all read the same; a hand-written header
reader would have to know each processor's float format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
