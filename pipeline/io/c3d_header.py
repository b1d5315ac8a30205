"""Read the sampling rates from a C3D header without loading the data.

The 512-byte header holds the point rate (words 11-12, a float) and the number of analog samples
per point frame (word 10). The processor type in the first parameter block says how numbers are
stored: 84 Intel (little-endian IEEE), 85 DEC (little-endian, floats 4x the IEEE reading),
86 MIPS (big-endian IEEE).
"""

from __future__ import annotations

import struct
from pathlib import Path

_PROCESSORS = {84: ("<", 1.0), 85: ("<", 0.25), 86: (">", 1.0)}


def read_rates(path: str | Path) -> dict[str, float] | None:
    """Return ``{"point": Hz, "analog": Hz}``, or ``None`` when the file is not a C3D."""
    with open(path, "rb") as fh:
        header = fh.read(512)
        if len(header) < 512 or header[1] != 0x50:
            return None
        param_block = header[0]
        fh.seek(512 * (param_block - 1))
        param_start = fh.read(4)
    if len(param_start) < 4 or param_start[3] not in _PROCESSORS:
        return None
    endian, float_scale = _PROCESSORS[param_start[3]]
    analog_per_frame = struct.unpack(f"{endian}H", header[18:20])[0]
    point_rate = struct.unpack(f"{endian}f", header[20:24])[0] * float_scale
    if not point_rate > 0:
        return None
    return {"point": float(point_rate), "analog": float(point_rate * analog_per_frame)}
