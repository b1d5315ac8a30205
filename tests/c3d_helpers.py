"""A tiny C3D writer for tests that need real (small, valid) C3D files."""

from __future__ import annotations

import struct
from pathlib import Path

import ezc3d
import numpy as np


def write_minimal_c3d(path: Path, *, point_rate_hz: float = 100.0, analog_rate_hz: float = 1000.0,
                      n_frames: int = 50, analog_labels: tuple[str, ...] = ("EMG1",),
                      n_markers: int = 2) -> Path:
    """Write a small valid C3D file (two markers, a few analog channels) with ezc3d."""
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [point_rate_hz]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = [f"M{i + 1}" for i in range(n_markers)]
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [analog_rate_hz]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = list(analog_labels)
    rng = np.random.default_rng(0)
    points = np.ones((4, n_markers, n_frames))
    points[:3] = rng.normal(size=(3, n_markers, n_frames)) * 10 + 100
    c3d["data"]["points"] = points
    ratio = int(round(analog_rate_hz / point_rate_hz))
    c3d["data"]["analogs"] = rng.normal(size=(1, len(analog_labels), n_frames * ratio)) * 1e-3
    path.parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))
    return path


def _ieee_to_dec(raw: bytes) -> bytes:
    """4 little-endian IEEE float bytes -> the same value as a DEC (VAX F) float.

    A VAX F float reads the IEEE bit pattern as 0.f * 2**(e - 128), a quarter of the IEEE value,
    and stores its sign/exponent half first: so encode 4 * value and swap the 16-bit halves.
    """
    value = struct.unpack("<f", raw)[0]
    if value == 0.0 or not np.isfinite(value):
        return b"\x00\x00\x00\x00" if value == 0.0 else raw[2:] + raw[:2]
    b = struct.pack("<f", value * 4.0)
    return b[2:4] + b[0:2]


def _convert_floats(data: bytearray, start: int, stop: int) -> None:
    for i in range(start, stop - 3, 4):
        data[i:i + 4] = _ieee_to_dec(bytes(data[i:i + 4]))


def intel_to_dec(src: Path, dst: Path) -> Path:
    """Rewrite an Intel (processor 84) C3D file as a DEC (processor 85) one, value for value.

    Converts the header's floats (point scale, frame rate, event times), every float
    parameter, and the data section when it is stored as floats (POINT:SCALE < 0).
    """
    data = bytearray(Path(src).read_bytes())
    param_start = 512 * (data[0] - 1)
    if data[param_start + 3] != 84:
        raise ValueError(f"{src} is not an Intel C3D file")
    scale = struct.unpack("<f", bytes(data[12:16]))[0]
    data_start = 512 * (struct.unpack("<H", bytes(data[16:18]))[0] - 1)
    for offset in (12, 20):
        _convert_floats(data, offset, offset + 4)
    _convert_floats(data, 304, 304 + 18 * 4)
    data[param_start + 3] = 85
    pos = param_start + 4
    end = param_start + 512 * data[param_start + 2]
    while pos < end:
        n_chars = abs(struct.unpack("b", bytes(data[pos:pos + 1]))[0])
        ident = struct.unpack("b", bytes(data[pos + 1:pos + 2]))[0]
        if n_chars == 0:
            break
        next_at = pos + 2 + n_chars
        step = struct.unpack("<h", bytes(data[next_at:next_at + 2]))[0]
        if ident > 0:  # a parameter: type, dims, then its values
            body = next_at + 2
            kind = struct.unpack("b", bytes(data[body:body + 1]))[0]
            n_dims = data[body + 1]
            dims = list(data[body + 2:body + 2 + n_dims])
            if kind == 4:
                count = int(np.prod(dims)) if dims else 1
                values = body + 2 + n_dims
                _convert_floats(data, values, values + 4 * count)
        if step == 0:
            break
        pos = next_at + step
    if scale < 0:
        _convert_floats(data, data_start, len(data))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)
