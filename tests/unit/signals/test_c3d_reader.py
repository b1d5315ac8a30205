"""C3D reading: units, missing samples, analog scaling not applied twice, bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import ezc3d
import numpy as np
import pytest

from pipeline.errors import C3DError
from pipeline.io.c3d import read_c3d


def test_reads_markers_analogs_plates(synthetic_trial) -> None:
    path, truth = synthetic_trial
    rec = read_c3d(path)
    assert rec.markers.labels[:2] == ("RHEE", "LHEE") and rec.markers.rate_hz == 100.0
    assert rec.markers.xyz_m.shape == (600, 8, 3)
    assert np.nanmax(np.abs(rec.markers.xyz_m)) < 5.0  # metres, not millimetres
    assert rec.analogs.rate_hz == 2000.0 and rec.analogs.values.shape == (12000, 16)
    assert [p.plate_type for p in rec.plates] == [2, 2]
    assert rec.plates[0].channel_labels == ("Fx1", "Fy1", "Fz1", "Mx1", "My1", "Mz1")
    np.testing.assert_allclose(rec.plates[0].origin_m, [0.0015, -0.0008, 0.038], atol=1e-7)


def test_analog_scale_applied_once(tmp_path: Path) -> None:
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [100.0]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = ["M1"]
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [200.0]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = ["A1"]
    c3d["parameters"]["ANALOG"]["SCALE"]["value"] = [0.25]
    c3d["parameters"]["ANALOG"]["OFFSET"]["value"] = [0]
    c3d["data"]["points"] = np.ones((4, 1, 10))
    c3d["data"]["analogs"] = np.full((1, 1, 20), 3.0)
    path = tmp_path / "scaled.c3d"
    c3d.write(str(path))
    raw = path.read_bytes()
    assert struct.pack("<f", 12.0) in raw  # stored raw = 3.0 / 0.25
    np.testing.assert_allclose(read_c3d(path).analogs.values, 3.0)  # scaled exactly once


def test_bad_files_are_clear_c3d_errors(tmp_path: Path, synthetic_trial) -> None:
    good, _ = synthetic_trial
    data = good.read_bytes()
    cases = {
        "empty.c3d": (b"", "empty"),
        "text.c3d": (b"this is not a c3d file\n" * 50, "not a C3D"),
        "truncated.c3d": (data[: len(data) // 2], "truncated"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(C3DError, match=message) as info:
            read_c3d(path)
        assert str(path) in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(C3DError, match="not found"):
        read_c3d(tmp_path / "absent.c3d")
