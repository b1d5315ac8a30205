"""A wrong lab_frame is caught from the markers (MOtoNMS Control1: Y-up lab, walking along +Z,
subject's right towards -X)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.io.c3d import read_c3d
from pipeline.signals.frame_check import check_lab_frame
from pipeline.signals.markers import process_markers

RIGHT = {"x": "+z", "y": "+y", "z": "-x"}


def _markers(shared, name, lab_frame):
    path = shared / "real-sessions" / "motonms-unipd-control1" / name
    table = process_markers(read_c3d(path), lab_frame=lab_frame, cutoff_hz=6.0, max_gap_s=0.1,
                            long_gap="warn")
    return table.xyz_m


def test_right_frame_walks_along_plus_x(shared_data):
    found = check_lab_frame(_markers(shared_data, "Walking1.c3d", RIGHT), lab_frame=RIGHT)
    assert found["direction"] == "+x"
    assert found["travel_m"][0] > 2.0  # ~3 m across the capture volume


def test_z_up_default_on_a_y_up_lab_is_an_error(shared_data):
    z_up = {"x": "+x", "y": "+z", "z": "-y"}
    with pytest.raises(ConfigError, match=r"up axis.*\+y"):
        check_lab_frame(_markers(shared_data, "Static1.c3d", z_up), lab_frame=z_up,
                        file="Static1.c3d")


def test_walking_along_the_side_axis_is_named(shared_data, caplog):
    swapped = {"x": "-x", "y": "+y", "z": "-z"}
    with caplog.at_level(logging.WARNING, logger="pipeline.signals.frame_check"):
        found = check_lab_frame(_markers(shared_data, "Walking1.c3d", swapped),
                                lab_frame=swapped, file="Walking1.c3d")
    assert found["direction"] == "z"
    (record,) = [r for r in caplog.records if "lab_frame.x" in r.getMessage()]
    assert 'lab_frame.x to "+z"' in record.getMessage()


def test_a_marker_set_too_small_to_tell_up_is_not_checked() -> None:
    """Markers within a few centimetres (a calibration object, a minimal test file) cannot say
    which axis is up: no error, whatever lab_frame says; the same shape at body size is refused."""
    rng = np.random.default_rng(0)
    small = np.zeros((10, 4, 3))
    small[:, :, 2] = np.linspace(0.0, 0.03, 4)  # tallest along z, 3 cm
    small += rng.normal(scale=1e-4, size=small.shape)
    lab = {"x": "+x", "y": "+y", "z": "+z"}
    assert check_lab_frame(small, lab_frame=lab)["direction"] == "none"
    with pytest.raises(ConfigError, match="along OpenSim z"):
        check_lab_frame(small * 50.0, lab_frame=lab)
