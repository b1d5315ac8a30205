"""OpenSim text files: ``.trc`` markers and ``.mot``/``.sto`` storage tables (write and read).

Writers are atomic (a temporary file renamed on success). Values are written with ``%.10g``;
missing marker samples are written as ``NaN``, which OpenSim's ``TRCFileAdapter`` reads as
missing. Readers accept CRLF line endings and honour ``inDegrees``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
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


@dataclass(frozen=True)
class StorageTable:
    """A ``.mot``/``.sto`` table: ``values`` is (row, column) without the time column."""

    labels: tuple[str, ...]
    times_s: np.ndarray
    values: np.ndarray
    name: str = ""
    in_degrees: bool = False

    def column(self, label: str) -> np.ndarray:
        return self.values[:, self.labels.index(label)]


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


def write_storage(path: str | Path, table: StorageTable, *,
                  float_format: str = FLOAT_FORMAT) -> None:
    """Write an OpenSim storage file (``.mot`` or ``.sto``, version 1 header) atomically
    (``float_format="%.17g"`` writes every double exactly)."""
    path = Path(path)
    n_rows, n_columns = len(table.times_s), len(table.labels) + 1
    head = [
        table.name or path.stem,
        "version=1",
        f"nRows={n_rows}",
        f"nColumns={n_columns}",
        f"inDegrees={'yes' if table.in_degrees else 'no'}",
        "endheader",
        "time\t" + "\t".join(table.labels),
    ]
    data = np.column_stack([table.times_s, np.asarray(table.values).reshape(n_rows, -1)])
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(head) + "\n" + _matrix_text(data, float_format=float_format),
                       encoding="utf-8")


def read_storage(path: str | Path) -> StorageTable:
    """Read a ``.mot``/``.sto`` file (any header before ``endheader``; ``inDegrees`` as OpenSim
    reads it)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
        header = {}
        for ln in lines[:end]:
            if "=" in ln:
                key, _, value = ln.partition("=")
                header[key.strip()] = value.strip()
        columns = lines[end + 1].split("\t")
        rows = [ln for ln in lines[end + 2:] if ln.strip()]
        data = np.loadtxt(io.StringIO("\n".join(rows)), ndmin=2) if rows else np.zeros(
            (0, len(columns)))
    except (StopIteration, IndexError, ValueError) as exc:
        raise OpenSimFileError(describe(path, f"not a valid storage file ({exc})",
                                        "regenerate it with the pipeline step that writes it"))\
            from exc
    return StorageTable(tuple(c.strip() for c in columns[1:]), data[:, 0], data[:, 1:],
                        name=lines[0].strip() if end > 0 else "",
                        in_degrees=_in_degrees(header))


def _in_degrees(header: dict[str, str]) -> bool:
    """``inDegrees`` as OpenSim's ``Storage`` reads it: an old (SIMM-style) file without a
    ``version`` line and without ``inDegrees`` holds angles in degrees."""
    if "inDegrees" in header:
        return header["inDegrees"].lower() == "yes"
    return "version" not in header


# --------------------------------------------------------------------------------------------
# Tables read with OpenSim's own Storage, so that old SIMM-style headers work too


@dataclass(frozen=True)
class Table:
    """A time series: ``data`` has shape (time, column); angles as in the file (``in_degrees``)."""

    time_s: np.ndarray
    labels: tuple[str, ...]
    data: np.ndarray
    in_degrees: bool = False

    def column(self, label: str) -> np.ndarray:
        return self.data[:, self.labels.index(label)]

    def window(self, t0_s: float, t1_s: float) -> Table:
        keep = (self.time_s >= t0_s - 1e-9) & (self.time_s <= t1_s + 1e-9)
        return Table(self.time_s[keep], self.labels, self.data[keep], self.in_degrees)


def _coordinate_label(label: str) -> str:
    """``/jointset/hip_r/hip_flexion_r/value`` -> ``hip_flexion_r``; other labels unchanged."""
    if label.startswith("/") and label.endswith("/value"):
        return label.rsplit("/", 2)[-2]
    return label


def read_table(path: str | Path, *, error_cls: type[PipelineError] = PipelineError,
               fix: str = "rerun the step that writes it") -> Table:
    """Read a ``.sto``/``.mot`` file. State-path labels (``.../<coord>/value``) become names."""
    import opensim as osim

    path = Path(path)
    if not path.is_file():
        raise error_cls(describe(path, "file does not exist", fix))
    try:
        storage = osim.Storage(str(path))
        labels_os = storage.getColumnLabels()
        labels = [labels_os.get(i) for i in range(labels_os.getSize())]
        n_rows, n_cols = storage.getSize(), len(labels) - 1
        time_s = np.empty(n_rows)
        data = np.empty((n_rows, n_cols))
        for i in range(n_rows):
            row = storage.getStateVector(i)
            time_s[i] = row.getTime()
            values = row.getData()
            data[i] = [values.get(j) for j in range(n_cols)]
        in_degrees = bool(storage.isInDegrees())
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise error_cls(describe(path, f"cannot be read as a .sto/.mot table ({first})",
                                 fix)) from exc
    if n_rows == 0:
        raise error_cls(describe(path, "table has no rows", fix))
    names = [_coordinate_label(lab) for lab in labels[1:]]
    keep = [i for i, lab in enumerate(labels[1:]) if not lab.endswith(("/speed", "/activation",
                                                                       "/fiber_length"))]
    return Table(time_s, tuple(names[i] for i in keep), data[:, keep], in_degrees)


def format_table(table: Table, *, name: str = "table") -> str:
    """Text of a version-1 ``.sto`` file for ``table``."""
    n_rows, n_cols = table.data.shape
    header = (f"{name}\nversion=1\nnRows={n_rows}\nnColumns={n_cols + 1}\n"
              f"inDegrees={'yes' if table.in_degrees else 'no'}\nendheader\n")
    buffer = io.StringIO()
    buffer.write(header)
    buffer.write("\t".join(("time", *table.labels)) + "\n")
    np.savetxt(buffer, np.column_stack([table.time_s, table.data]), fmt="%.12g",
               delimiter="\t")
    return buffer.getvalue()


def write_table(path: str | Path, table: Table, *, name: str | None = None) -> None:
    """Write ``table`` as a ``.sto`` file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(format_table(table, name=name or path.stem), encoding="utf-8")
