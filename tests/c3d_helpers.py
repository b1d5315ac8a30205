"""A tiny C3D writer for tests that need real (small, valid) C3D files."""

from __future__ import annotations

from pathlib import Path

import ezc3d
import numpy as np


def write_minimal_c3d(path: Path, *, point_rate_hz: float = 100.0, analog_rate_hz: float = 1000.0,
                      n_frames: int = 50, analog_labels: tuple[str, ...] = ("EMG1",)) -> Path:
    """Write a small valid C3D file (two markers, a few analog channels) with ezc3d."""
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [point_rate_hz]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = ["M1", "M2"]
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [analog_rate_hz]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = list(analog_labels)
    rng = np.random.default_rng(0)
    points = np.ones((4, 2, n_frames))
    points[:3] = rng.normal(size=(3, 2, n_frames)) * 10 + 100
    c3d["data"]["points"] = points
    ratio = int(round(analog_rate_hz / point_rate_hz))
    c3d["data"]["analogs"] = rng.normal(size=(1, len(analog_labels), n_frames * ratio)) * 1e-3
    path.parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))
    return path
