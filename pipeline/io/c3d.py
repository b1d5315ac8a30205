"""Read a C3D file into plain arrays in SI units: markers, analog channels, force plates, events.

ezc3d does the binary decoding. What it returns is checked and converted here:

- Markers: POINT:UNITS (mm or m) -> metres; a sample is missing (NaN) when its residual is
  negative or all three coordinates are exactly zero (Vicon and BTS write zeros for gaps).
- Analogs: ezc3d already applies ANALOG:OFFSET, ANALOG:SCALE and ANALOG:GEN_SCALE when it reads
  (value = (raw - offset) * scale * gen_scale), so they are not applied again here. Per-channel
  ANALOG:UNITS are kept; force-plate channels are converted to N, N m and m.
- Force plates (types 1-4): corners and origin in metres, calibration matrix (type 4; identity
  when a vendor such as Motion Analysis leaves it empty), and the plate's raw channels in SI.
  The wrench itself is computed in :mod:`pipeline.signals.forceplates` (ezc3d's own extraction
  computes a centre of pressure even at zero load; it is used as an oracle in tests only).
- Events: EVENT:LABELS, CONTEXTS and TIMES (minutes row + seconds row).
- Truncated files: ezc3d silently reads the frames it finds; the frame count in the 512-byte
  header (or TRIAL:ACTUAL_END_FIELD for long trials) is compared with what was read.

Times are C3D times: sample ``i`` of the markers is at ``first_time_s + i / rate_hz``, where
``first_time_s = first_frame / rate_hz`` (so C3D events line up with the samples).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import C3DError, describe

log = logging.getLogger(__name__)

LENGTH_TO_M = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}
FORCE_TO_N = {"n": 1.0, "kn": 1e3}
MOMENT_TO_NM = {"nmm": 1e-3, "nm": 1.0, "n.mm": 1e-3, "n.m": 1.0, "n*mm": 1e-3, "n*m": 1.0}
#: Markers farther than this from the lab origin mean the units are wrong (e.g. m read as mm).
MAX_MARKER_DISTANCE_M = 10.0
# Expected channel count per plate type; type 3 (Kistler) has 8 raw channels.
PLATE_CHANNELS = {1: 6, 2: 6, 3: 8, 4: 6}


@dataclass(frozen=True)
class Markers:
    """Marker trajectories: ``xyz_m`` is (frame, marker, 3) in the lab frame, NaN when missing."""

    labels: tuple[str, ...]
    rate_hz: float
    xyz_m: np.ndarray
    residuals: np.ndarray  # (frame, marker); negative where the sample is missing

    @property
    def n_frames(self) -> int:
        return int(self.xyz_m.shape[0])


@dataclass(frozen=True)
class Analogs:
    """Analog channels: ``values`` is (sample, channel), scaled to the units in ``units``."""

    labels: tuple[str, ...]
    rate_hz: float
    units: tuple[str, ...]
    values: np.ndarray

    def index(self, label: str) -> int:
        return self.labels.index(label)


@dataclass(frozen=True)
class ForcePlate:
    """One force platform, geometry in metres in the lab frame, channels in SI units.

    ``channels_si`` is (sample, n) in the plate's own frame: Fx Fy Fz Mx My Mz (types 2, 4, after
    the calibration matrix for type 4), Fx Fy Fz Px Py Tz (type 1) or the 8 Kistler channels
    (type 3). ``origin_m`` is FORCE_PLATFORM:ORIGIN as stored: for types 2/4 the vector from the
    working surface's centre to the sensor origin in plate coordinates (ezc3d flips it when its z
    is negative; so does :mod:`pipeline.signals.forceplates`).
    """

    number: int  # 1-based, as in FORCE_PLATFORM
    plate_type: int
    corners_m: np.ndarray  # (4, 3)
    origin_m: np.ndarray  # (3,)
    cal_matrix: np.ndarray  # (6, 6) or (8, 8); identity when absent
    channel_labels: tuple[str, ...]
    channels_si: np.ndarray
    rate_hz: float

    @property
    def geometry_ok(self) -> bool:
        """Corners are finite, within 100 m of the origin and span a non-degenerate plate."""
        c = self.corners_m
        if not np.all(np.isfinite(c)) or np.abs(c).max() > 100.0:
            return False
        return bool(np.linalg.norm(np.cross(c[0] - c[1], c[0] - c[3])) > 1e-4)


@dataclass(frozen=True)
class Event:
    label: str
    context: str
    time_s: float


@dataclass(frozen=True)
class C3DRecording:
    path: Path
    markers: Markers
    analogs: Analogs
    plates: tuple[ForcePlate, ...]
    events: tuple[Event, ...]
    first_frame: int
    first_time_s: float
    manufacturer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def marker_times_s(self) -> np.ndarray:
        return self.first_time_s + np.arange(self.markers.n_frames) / self.markers.rate_hz

    @property
    def analog_times_s(self) -> np.ndarray:
        n = self.analogs.values.shape[0]
        return self.first_time_s + np.arange(n) / self.analogs.rate_hz


def _param(params: dict[str, Any], group: str, name: str, default: Any = None) -> Any:
    try:
        return params[group][name]["value"]
    except KeyError:
        return default


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v).strip() for v in value]


def _header_frames(path: Path, params: dict[str, Any]) -> int | None:
    """Frame count promised by the raw header (ezc3d rewrites its own copy to what it read)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
        if len(head) < 512:
            return None
        fh.seek(512 * (head[0] - 1))
        proc = fh.read(4)
    endian = ">" if len(proc) == 4 and proc[3] == 86 else "<"
    first, last = struct.unpack(f"{endian}HH", head[6:10])
    n = last - first + 1
    end_field = _param(params, "TRIAL", "ACTUAL_END_FIELD")
    start_field = _param(params, "TRIAL", "ACTUAL_START_FIELD")
    if end_field is not None and start_field is not None and len(end_field) >= 2:
        end = int(end_field[0]) + 65536 * int(end_field[1])
        start = int(start_field[0]) + 65536 * int(start_field[1])
        if end >= start > 0:
            n = max(n, end - start + 1)
    return n


def _load(path: Path) -> dict[str, Any]:
    import ezc3d

    if not path.is_file():
        raise C3DError(describe(path, "file not found", "check the `file` column of trials.tsv"))
    if path.stat().st_size == 0:
        raise C3DError(describe(path, "file is empty", "re-export the trial from the lab software"))
    with open(path, "rb") as fh:
        head = fh.read(2)
    if len(head) < 2 or head[1] != 0x50:
        raise C3DError(describe(path, "not a C3D file (no C3D signature in the header)",
                                "point the trial at the .c3d exported by the capture software"))
    try:
        return ezc3d.c3d(str(path), extract_forceplat_data=False)
    except Exception as exc:  # ezc3d raises OSError/RuntimeError with terse messages
        raise C3DError(describe(path, f"cannot be read as C3D ({exc})",
                                "re-export the trial; the file is corrupt or truncated")) from exc


def load_checked(path: Path) -> dict[str, Any]:
    """ezc3d's reading of ``path``, refused when truncated or without frames."""
    c3d = _load(path)
    n_frames = np.asarray(c3d["data"]["points"]).shape[2]
    expected = _header_frames(path, c3d["parameters"])
    if expected is not None and n_frames < expected:
        raise C3DError(describe(path, f"truncated: the header announces {expected} frames but "
                                f"only {n_frames} are in the file",
                                "re-export or re-copy the trial (the copy is incomplete)"))
    if n_frames == 0:
        raise C3DError(describe(path, "contains no frames", "re-export the trial with data"))
    return c3d


def _check_marker_range(path: Path, markers: Markers) -> None:
    """Refuse coordinates no lab can record: a units mistake, not a measurement.

    A units mistake moves every marker, so the test is on the typical marker (the median over
    markers of each one's median distance from the lab origin). Single points far away are
    usually not trajectories at all (Vicon stores Plug-in Gait angles, moments and powers as
    POINT data): they are listed once, and the trial is kept.
    """
    if not markers.labels or not np.isfinite(markers.xyz_m).any():
        return
    distance = np.linalg.norm(markers.xyz_m, axis=2)  # (frame, marker)
    seen = np.isfinite(distance).any(axis=0)
    with np.errstate(all="ignore"):
        typical = np.nanmedian(distance[:, seen], axis=0)
    if float(np.median(typical)) > MAX_MARKER_DISTANCE_M:
        index = int(np.flatnonzero(seen)[np.argsort(typical)[len(typical) // 2]])
        raise C3DError(describe(
            path, f"markers are typically {float(np.median(typical)):.3g} m from the lab origin "
            f"(e.g. {markers.labels[index]}; more than {MAX_MARKER_DISTANCE_M:g} m): the "
            "POINT:UNITS of the file do not match its data",
            "re-export the trial with correct POINT:UNITS (mm or m)"))
    far = [markers.labels[i] for i in np.flatnonzero(seen)
           if np.nanmax(distance[:, i]) > MAX_MARKER_DISTANCE_M]
    if far:
        log.info("%s: %d point(s) lie more than %g m from the lab origin and cannot be marker "
                 "trajectories (model outputs such as angles or moments?): %s; they are only "
                 "used if a model maps them", path, len(far), MAX_MARKER_DISTANCE_M,
                 ", ".join(far[:10]) + (" ..." if len(far) > 10 else ""))


def require_markers(recording: C3DRecording, *, min_frames: int = 1) -> None:
    """Refuse a recording without marker data (no markers, or every sample missing)."""
    path, markers = recording.path, recording.markers
    if not markers.labels:
        raise C3DError(describe(path, "has no markers", "export the trial with its marker "
                                "trajectories (or use it as an mvc trial)"))
    if not np.isfinite(markers.xyz_m).any():
        raise C3DError(describe(path, f"has no marker data: every sample of its "
                                f"{len(markers.labels)} markers is missing (NaN, or exactly zero "
                                "as some systems write gaps)", "re-export the trial with its "
                                "labelled trajectories"))
    if markers.n_frames < min_frames:
        raise C3DError(describe(path, f"has {markers.n_frames} frame(s); a dynamic trial needs at "
                                f"least {min_frames} to be filtered and calibrated",
                                "export the whole movement, or remove the trial from trials.tsv"))


def read_c3d(path: str | Path) -> C3DRecording:
    """Read ``path`` into a :class:`C3DRecording` (SI units, lab frame); raise C3DError."""
    path = Path(path)
    c3d = load_checked(path)
    params = c3d["parameters"]
    points = np.asarray(c3d["data"]["points"], dtype=float)
    markers = _markers(path, c3d, points)
    _check_marker_range(path, markers)
    n_frames = markers.n_frames
    analogs = _analogs(path, c3d, n_frames)
    header = c3d["header"]["points"]
    first_frame = int(header.get("first_frame", 0))
    plates = _plates(path, params, analogs, markers_unit=_length_scale(path, params))
    manufacturer = " ".join(_strings(_param(params, "MANUFACTURER", "COMPANY", [])))
    return C3DRecording(
        path=path, markers=markers, analogs=analogs, plates=plates, events=_events(params),
        first_frame=first_frame, first_time_s=first_frame / markers.rate_hz,
        manufacturer=manufacturer,
    )


def _length_scale(path: Path, params: dict[str, Any]) -> float:
    units = _strings(_param(params, "POINT", "UNITS", []))
    unit = units[0].lower() if units else ""
    if unit not in LENGTH_TO_M:
        log.warning("%s: POINT:UNITS is %r; assuming millimetres", path, unit or "absent")
        return 1e-3
    return LENGTH_TO_M[unit]


def _markers(path: Path, c3d: dict[str, Any], points: np.ndarray) -> Markers:
    params = c3d["parameters"]
    labels = _strings(_param(params, "POINT", "LABELS", []))
    for extra in ("LABELS2", "LABELS3", "LABELS4"):
        labels += _strings(_param(params, "POINT", extra, []))
    n_markers = points.shape[1]
    labels = labels[:n_markers] + [f"M{i + 1:03d}" for i in range(len(labels), n_markers)]
    rate = float(c3d["header"]["points"]["frame_rate"])
    if not rate > 0:
        raise C3DError(describe(path, "marker rate is zero", "re-export with a valid POINT:RATE"))
    xyz = np.transpose(points[:3], (2, 1, 0)) * _length_scale(path, params)  # (frame, marker, 3)
    residuals = np.asarray(c3d["data"]["meta_points"]["residuals"], dtype=float)[0].T
    missing = (residuals < 0) | np.all(xyz == 0.0, axis=2) | np.any(~np.isfinite(xyz), axis=2)
    xyz = np.where(missing[:, :, None], np.nan, xyz)
    return Markers(tuple(labels), rate, xyz, np.where(missing, -1.0, residuals))


def _analogs(path: Path, c3d: dict[str, Any], n_frames: int) -> Analogs:
    params = c3d["parameters"]
    values = np.asarray(c3d["data"]["analogs"], dtype=float)
    values = values[0].T if values.size else np.zeros((0, 0))  # (sample, channel)
    n_channels = values.shape[1]
    labels = _strings(_param(params, "ANALOG", "LABELS", []))
    for extra in ("LABELS2", "LABELS3"):
        labels += _strings(_param(params, "ANALOG", extra, []))
    labels = labels[:n_channels] + [f"A{i + 1:03d}" for i in range(len(labels), n_channels)]
    units = _strings(_param(params, "ANALOG", "UNITS", []))
    units = (units + [""] * n_channels)[:n_channels]
    rate = float(c3d["header"]["analogs"]["frame_rate"] or 0.0)
    if n_channels and values.shape[0] and not rate > 0:
        raise C3DError(describe(path, "analog rate is zero", "re-export with ANALOG:RATE set"))
    if n_channels and values.shape[0] % n_frames:
        log.warning("%s: %d analog samples for %d frames (not a whole multiple)", path,
                    values.shape[0], n_frames)
    return Analogs(tuple(labels), rate, tuple(units), values)


def _unit_factor(path: Path, unit: str, kind: str, label: str) -> float:
    table = {"force": FORCE_TO_N, "moment": MOMENT_TO_NM, "length": LENGTH_TO_M}[kind]
    key = unit.lower().replace(" ", "")
    if key in table:
        return table[key]
    default = {"force": 1.0, "moment": 1e-3, "length": 1e-3}[kind]
    log.warning("%s: unit %r of plate channel %s not recognised; assuming %s", path, unit, label,
                {"force": "N", "moment": "N mm", "length": "mm"}[kind])
    return default


def _plate_kinds(plate_type: int) -> list[str]:
    if plate_type == 1:
        return ["force"] * 3 + ["length"] * 2 + ["moment"]
    if plate_type == 3:
        return ["force"] * 8
    return ["force"] * 3 + ["moment"] * 3


def _plates(path: Path, params: dict[str, Any], analogs: Analogs,
            *, markers_unit: float) -> tuple[ForcePlate, ...]:
    used = _param(params, "FORCE_PLATFORM", "USED")
    n_used = int(np.asarray(used).ravel()[0]) if used is not None and np.size(used) else 0
    if n_used == 0:
        return ()
    types = np.asarray(_param(params, "FORCE_PLATFORM", "TYPE", []), dtype=int).ravel()
    corners = np.asarray(_param(params, "FORCE_PLATFORM", "CORNERS", []), dtype=float)
    origins = np.asarray(_param(params, "FORCE_PLATFORM", "ORIGIN", []), dtype=float)
    channels = np.asarray(_param(params, "FORCE_PLATFORM", "CHANNEL", []), dtype=int)
    cal = np.asarray(_param(params, "FORCE_PLATFORM", "CAL_MATRIX", []), dtype=float)
    if types.size < n_used or corners.size < 12 * n_used or channels.ndim != 2:
        raise C3DError(describe(path, f"FORCE_PLATFORM declares {n_used} plates but its TYPE, "
                                "CORNERS or CHANNEL parameters are incomplete",
                                "re-export the trial with the force plate set-up"))
    # ezc3d returns parameter arrays in C3D (Fortran) order as numpy shapes (3, 4, n), (3, n)
    # and (n_channels, n): transpose to per-plate rows.
    corners = corners.reshape(3, 4, -1)
    origins = origins.reshape(3, -1) if origins.size else np.zeros((3, n_used))
    plates = []
    for i in range(n_used):
        ptype = int(types[i])
        if ptype not in PLATE_CHANNELS:
            raise C3DError(describe(path, f"force plate {i + 1} has type {ptype}; only types 1-4 "
                                    "are supported", "export the plate as type 2 or 4"))
        n_ch = PLATE_CHANNELS[ptype]
        idx = channels[:n_ch, i] - 1
        if channels.shape[0] < n_ch or np.any(idx < 0) or np.any(idx >= len(analogs.labels)):
            raise C3DError(describe(path, f"force plate {i + 1} points to analog channels "
                                    f"{(idx + 1).tolist()} that do not exist",
                                    "fix FORCE_PLATFORM:CHANNEL in the export"))
        labels = tuple(analogs.labels[j] for j in idx)
        raw = analogs.values[:, idx]
        cal_i = np.eye(n_ch)
        if ptype == 4:
            # The matrix turns the raw channels into Fx..Mz; C3D stores it column by column,
            # which ezc3d's (6, 6, n) array already reflects. Moments come out in N per point
            # unit (N mm when POINT:UNITS is mm).
            if cal.ndim == 3 and cal.shape[2] > i and np.any(cal[:, :, i]):
                cal_i = cal[:n_ch, :n_ch, i]
            else:
                log.warning("%s: plate %d is type 4 without CAL_MATRIX; using identity", path,
                            i + 1)
            factors = np.array([1.0] * 3 + [markers_unit] * 3)
            raw = (raw @ cal_i.T) * factors
        else:
            factors = np.array([_unit_factor(path, analogs.units[j], kind, analogs.labels[j])
                                for j, kind in zip(idx, _plate_kinds(ptype), strict=True)])
            raw = raw * factors
        plates.append(ForcePlate(
            number=i + 1, plate_type=ptype, corners_m=corners[:, :, i].T * markers_unit,
            origin_m=origins[:, i] * markers_unit if origins.shape[1] > i else np.zeros(3),
            cal_matrix=cal_i, channel_labels=labels, channels_si=raw, rate_hz=analogs.rate_hz,
        ))
    return tuple(plates)


def _events(params: dict[str, Any]) -> tuple[Event, ...]:
    labels = _strings(_param(params, "EVENT", "LABELS", []))
    times = np.asarray(_param(params, "EVENT", "TIMES", []), dtype=float)
    if not labels or times.size == 0:
        return ()
    contexts = _strings(_param(params, "EVENT", "CONTEXTS", []))
    contexts = (contexts + [""] * len(labels))[: len(labels)]
    times = times.reshape(2, -1) if times.ndim != 2 else times
    seconds = 60.0 * times[0] + times[1]
    return tuple(sorted((Event(lab, ctx, float(t)) for lab, ctx, t in
                         zip(labels, contexts, seconds, strict=False)), key=lambda e: e.time_s))
