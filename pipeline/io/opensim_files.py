"""OpenSim text files: ``.trc`` markers and ``.mot``/``.sto`` storage tables (write and read).

One table type per format (:class:`MarkerTable`, :class:`StoTable`), one reader and one writer
each; the readers are text parsers (no OpenSim needed) tested against OpenSim's own readers.
Writers are atomic (a temporary file renamed on success). Values are written with ``%.10g``
unless a caller asks for another format; missing samples are written as ``NaN``, which
OpenSim's ``TRCFileAdapter`` and ``STOFileAdapter`` read as missing. Readers accept CRLF line
endings; the storage reader honours ``inDegrees``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError, describe
from pipeline.fileio import atomic_path

FLOAT_FORMAT = "%.10g"


class OpenSimFileError(PipelineError):
    """An OpenSim text file is malformed."""


@dataclass(frozen=True)
class MarkerTable:
    """Markers on a uniform time base: ``xyz_m`` is (frame, marker, 3) in the OpenSim frame."""

    labels: tuple[str, ...]
    times_s: np.ndarray
    xyz_m: np.ndarray
    rate_hz: float


def _matrix_text(matrix: np.ndarray, first_columns: list[str] | None = None, *,
                 float_format: str = FLOAT_FORMAT) -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, matrix, fmt=float_format, delimiter="\t")
    text = buffer.getvalue().replace("nan", "NaN")
    if first_columns is None:
        return text
    lines = text.splitlines()
    return "".join(f"{a}\t{b}\n" for a, b in zip(first_columns, lines, strict=True))


def write_trc(path: str | Path, table: MarkerTable, *, orig_start_frame: int = 1) -> None:
    """Write a ``.trc`` (PathFileType 4, metres) atomically."""
    path = Path(path)
    n_frames, n_markers = table.xyz_m.shape[:2]
    rate = f"{table.rate_hz:g}"
    head = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame"
        "\tOrigNumFrames",
        f"{rate}\t{rate}\t{n_frames}\t{n_markers}\tm\t{rate}\t{orig_start_frame}\t{n_frames}",
        "Frame#\tTime\t" + "\t".join(f"{label}\t\t" for label in table.labels).rstrip("\t"),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, n_markers + 1)),
        "",
    ]
    data = np.column_stack([table.times_s, table.xyz_m.reshape(n_frames, 3 * n_markers)])
    body = _matrix_text(data, [str(i) for i in range(1, n_frames + 1)])
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(head) + "\n" + body, encoding="utf-8")


def read_trc(path: str | Path, *, error_cls: type[PipelineError] = OpenSimFileError,
             fix: str = "rerun the C3D stage that writes it (`python -m pipeline markers`)"
             ) -> MarkerTable:
    """Read a ``.trc`` written by :func:`write_trc` or by OpenSim; lengths converted to metres.

    Reads what OpenSim's ``TRCFileAdapter`` reads: CRLF line endings, padded header values, and
    missing samples as empty fields, which become ``NaN``; a row cut short is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise error_cls(describe(path, "marker file does not exist", fix))
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        keys = [k.strip() for k in lines[1].split("\t")]
        values = [v.strip() for v in lines[2].split("\t") if v.strip()]
        header = dict(zip(keys, values, strict=False))
        rate = float(header["DataRate"])
        labels = tuple(x.strip() for x in lines[3].split("\t")[2:] if x.strip())
        width = 2 + 3 * len(labels)
        rows = []
        for number, ln in enumerate(lines[5:], start=6):
            if not ln.strip():
                continue
            fields = ln.split("\t")
            if len(fields) < width:
                raise ValueError(f"line {number} has {len(fields)} columns, expected {width}")
            rows.append([float(x) if x.strip() else np.nan for x in fields[:width]])
        data = np.array(rows, dtype=float).reshape(len(rows), width)
    except (IndexError, KeyError, ValueError) as exc:
        raise error_cls(describe(path, f"not a valid TRC file ({exc})", fix)) from exc
    units = header.get("Units", "m")
    scale = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}.get(units.lower())
    if scale is None:
        raise error_cls(describe(path, f"unknown marker units {units!r}",
                                 "write the .trc in mm, cm or m"))
    xyz = data[:, 2:].reshape(len(data), len(labels), 3) * scale
    return MarkerTable(labels, data[:, 1], xyz, rate)


@dataclass(frozen=True)
class StoTable:
    """A ``.sto``/``.mot`` time series: ``data`` is (row, column) without the time column;
    angles as in the file (``in_degrees``); ``name`` is the file's first header line."""

    time_s: np.ndarray
    labels: tuple[str, ...]
    data: np.ndarray
    name: str = field(default="", kw_only=True)
    in_degrees: bool = field(default=False, kw_only=True)

    def column(self, label: str) -> np.ndarray:
        return self.data[:, self.labels.index(label)]

    def window(self, t0_s: float, t1_s: float) -> StoTable:
        """The rows with ``t0_s <= time <= t1_s`` (1 ns tolerance)."""
        keep = (self.time_s >= t0_s - 1e-9) & (self.time_s <= t1_s + 1e-9)
        return replace(self, time_s=self.time_s[keep], data=self.data[keep])


def format_sto(table: StoTable, *, name: str | None = None,
               float_format: str = FLOAT_FORMAT) -> str:
    """Text of a version-1 OpenSim storage file (``.sto``/``.mot``) for ``table``; the first
    header line is ``name``, else ``table.name``, else ``table`` (``float_format="%.17g"``
    writes every double exactly)."""
    n_rows = len(table.time_s)
    data = np.asarray(table.data, dtype=float).reshape(n_rows, -1)
    if data.shape[1] != len(table.labels):
        raise ValueError(f"{data.shape[1]} data columns for {len(table.labels)} labels")
    head = [
        name or table.name or "table",
        "version=1",
        f"nRows={n_rows}",
        f"nColumns={len(table.labels) + 1}",
        f"inDegrees={'yes' if table.in_degrees else 'no'}",
        "endheader",
        "time\t" + "\t".join(table.labels),
    ]
    body = _matrix_text(np.column_stack([np.asarray(table.time_s, dtype=float), data]),
                        float_format=float_format)
    return "\n".join(head) + "\n" + body


def write_sto(path: str | Path, table: StoTable, *, float_format: str = FLOAT_FORMAT) -> None:
    """Write ``table`` as an OpenSim storage file (``.sto``/``.mot``) atomically; the header
    name is ``table.name``, else the file's stem."""
    path = Path(path)
    text = format_sto(table, name=table.name or path.stem, float_format=float_format)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_sto(path: str | Path, *, error_cls: type[PipelineError] = OpenSimFileError,
             fix: str = "rerun the step that writes it", require_rows: bool = False,
             state_values: bool = False) -> StoTable:
    """Read an OpenSim storage file (``.sto``/``.mot``) as OpenSim's ``Storage`` reads it.

    Any header lines before ``endheader`` (version 1 to 3, or an old SIMM-style header);
    column labels separated by tabs (by blanks when the line has no tab); values separated by
    tabs or blanks; CRLF line endings; ``NaN``/``nan`` as not-a-number; ``inDegrees`` as
    OpenSim reads it (a file without ``version`` and ``inDegrees`` lines is in degrees).

    A missing or unreadable file, and with ``require_rows`` a table without rows, raise
    ``error_cls`` with a message naming the file, the cause and ``fix``. With ``state_values``,
    state-path labels name their coordinate (``/jointset/hip_r/hip_flexion_r/value`` ->
    ``hip_flexion_r``) and the ``/speed``, ``/activation`` and ``/fiber_length`` columns of a
    states file are dropped (:func:`state_value_columns`).
    """
    path = Path(path)
    if not path.is_file():
        cause = "is a folder, not a file" if path.is_dir() else "file does not exist"
        raise error_cls(describe(path, cause, fix))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        end = next((i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader"), None)
        if end is None:
            raise ValueError("no 'endheader' line")
        header = {}
        for ln in lines[:end]:
            if "=" in ln:
                key, _, value = ln.partition("=")
                header[key.strip()] = value.strip()
        start = next((i for i in range(end + 1, len(lines)) if lines[i].strip()), None)
        if start is None:
            raise ValueError("no column labels after 'endheader'")
        text = lines[start].strip()
        columns = [c.strip() for c in (text.split("\t") if "\t" in text else text.split())]
        rows = [ln for ln in lines[start + 1:] if ln.strip()]
        data = (np.loadtxt(io.StringIO("\n".join(rows)), ndmin=2, dtype=float) if rows
                else np.zeros((0, len(columns))))
        if data.shape[1] != len(columns):
            raise ValueError(f"{len(columns)} column labels but {data.shape[1]} values a row")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error_cls(describe(path, f"not a readable .sto/.mot table ({exc})", fix)) from exc
    if require_rows and not len(data):
        raise error_cls(describe(path, "table has no rows", fix))
    table = StoTable(data[:, 0], tuple(columns[1:]), data[:, 1:],
                     name=lines[0].strip() if end > 0 else "", in_degrees=_in_degrees(header))
    return state_value_columns(table) if state_values else table


def state_value_columns(table: StoTable) -> StoTable:
    """The value columns of a states table, named by coordinate: ``.../<coordinate>/value`` ->
    ``<coordinate>``; ``/speed``, ``/activation`` and ``/fiber_length`` columns dropped; other
    labels unchanged."""
    keep = [i for i, label in enumerate(table.labels)
            if not label.endswith(("/speed", "/activation", "/fiber_length"))]
    names = tuple(_coordinate_label(table.labels[i]) for i in keep)
    return replace(table, labels=names, data=table.data[:, keep])


def _coordinate_label(label: str) -> str:
    """``/jointset/hip_r/hip_flexion_r/value`` -> ``hip_flexion_r``; other labels unchanged."""
    if label.startswith("/") and label.endswith("/value"):
        return label.rsplit("/", 2)[-2]
    return label


def _in_degrees(header: dict[str, str]) -> bool:
    """``inDegrees`` as OpenSim's ``Storage`` reads it: an old (SIMM-style) file without a
    ``version`` line and without ``inDegrees`` holds angles in degrees."""
    if "inDegrees" in header:
        return header["inDegrees"].lower() == "yes"
    return "version" not in header
