"""Gap filling, lab -> OpenSim rotation and the marker pipeline."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.bench.c3d import LAB_FRAME
from pipeline.errors import C3DError, ConfigError
from pipeline.io.c3d import read_c3d
from pipeline.signals.frames import lab_to_opensim, vertical_axis
from pipeline.signals.gaps import fill_gaps, find_gaps
from pipeline.signals.markers import process_markers

RATE_HZ = 100.0


def _smooth(n: int = 300) -> np.ndarray:
    t = np.arange(n) / RATE_HZ
    return np.stack([np.column_stack([np.sin(t), np.cos(2 * t), t ** 2])] * 2, axis=1)


def test_short_gap_filled_by_cubic_close_to_truth() -> None:
    truth = _smooth()
    xyz = truth.copy()
    xyz[100:108, 1] = np.nan
    xyz[:5, 0] = np.nan  # leading: not a gap, stays NaN
    assert [(g.marker, g.start, g.stop) for g in find_gaps(xyz, ["A", "B"])] == [("B", 100, 108)]
    filled = fill_gaps(xyz, ["A", "B"], rate_hz=RATE_HZ, max_gap_s=0.1)
    np.testing.assert_allclose(filled[100:108, 1], truth[100:108, 1], atol=1e-5)
    assert np.isnan(filled[:5, 0]).all()
    assert np.isnan(xyz[100, 1, 0])  # input untouched


def test_long_gap_error_names_marker_and_span(caplog: pytest.LogCaptureFixture) -> None:
    xyz = _smooth()
    xyz[100:130, 1] = np.nan
    with pytest.raises(C3DError, match=r"trial.c3d: .*B from 0\.990 s to 1\.300 s"):
        fill_gaps(xyz, ["A", "B"], rate_hz=RATE_HZ, max_gap_s=0.1, file="trial.c3d")
    with caplog.at_level(logging.WARNING):
        out = fill_gaps(xyz, ["A", "B"], rate_hz=RATE_HZ, max_gap_s=0.1, long_gap="warn")
    assert np.isnan(out[100:130, 1]).all() and "B from" in caplog.text


def test_lab_frame_rotation() -> None:
    rot = lab_to_opensim({"x": "+x", "y": "+z", "z": "-y"})
    np.testing.assert_array_equal(rot @ [1, 2, 3], [1, 3, -2])
    np.testing.assert_array_equal(vertical_axis(LAB_FRAME), [0, 0, 1])
    with pytest.raises(ConfigError, match="right-handed"):
        lab_to_opensim({"x": "+x", "y": "+z", "z": "+y"})
    with pytest.raises(ConfigError):
        lab_to_opensim({"x": "+x", "y": "+q", "z": "-y"})


def test_process_markers_fills_filters_rotates(synthetic_trial) -> None:
    path, _ = synthetic_trial
    rec = read_c3d(path)
    assert np.isnan(rec.markers.xyz_m[100:105, 3]).all()  # zeros in the file -> missing
    table = process_markers(rec, lab_frame=LAB_FRAME, cutoff_hz=6.0, max_gap_s=0.1)
    assert np.isfinite(table.xyz_m).all()
    lab = rec.markers.xyz_m[50, 5]
    np.testing.assert_allclose(table.xyz_m[50, 5], [lab[0], lab[2], -lab[1]], atol=2e-3)
    with pytest.raises(C3DError, match="M01 from"):
        process_markers(rec, lab_frame=LAB_FRAME, cutoff_hz=6.0, max_gap_s=0.02)
