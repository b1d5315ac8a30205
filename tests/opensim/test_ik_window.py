"""IK's time range: the trial's window less the marker-less frames at its ends."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.errors import IKError
from pipeline.io.opensim_files import MarkerTable, write_trc
from pipeline.osim.ik import marker_time_range

RATE = 100.0


def _trc(tmp_path, *, missing_start: int, missing_end: int, n: int = 300, n_markers: int = 8):
    t = np.arange(n) / RATE
    xyz = np.random.default_rng(0).normal(0, 0.1, (n, n_markers, 3)) + 1.0
    xyz[:missing_start] = np.nan                  # subject not yet in the volume
    xyz[n - missing_end:, : n_markers // 2] = np.nan  # half the markers gone at the end
    xyz[100:110, 0] = np.nan                      # an inner gap of one marker: kept
    path = tmp_path / "m.trc"
    write_trc(path, MarkerTable(tuple(f"M{i}" for i in range(n_markers)), t, xyz, RATE))
    return path, t


def test_marker_less_ends_are_left_out_once(tmp_path, caplog):
    path, t = _trc(tmp_path, missing_start=40, missing_end=25)
    with caplog.at_level(logging.INFO, logger="pipeline.osim.ik"):
        start, end = marker_time_range(path, min_marker_fraction=0.75)
    assert start == pytest.approx(t[40]) and end == pytest.approx(t[-26])
    (line,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert "40 frame(s) at the start and 25 at the end" in line


def test_window_bounds_the_range(tmp_path):
    path, t = _trc(tmp_path, missing_start=40, missing_end=25)
    assert marker_time_range(path, start_s=1.0, end_s=2.0) == pytest.approx((1.0, 2.0))
    # A window starting before the markers appear starts where they do.
    assert marker_time_range(path, start_s=0.1, end_s=None)[0] == pytest.approx(t[40])


def test_window_without_markers_is_a_clear_error(tmp_path):
    path, _ = _trc(tmp_path, missing_start=40, missing_end=25)
    with pytest.raises(IKError, match="start_s/end_s"):
        marker_time_range(path, start_s=0.0, end_s=0.3)
