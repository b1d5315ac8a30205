"""Real C3D files from ../shared/data (skipped when absent): vendors, plate types, events.

Oracles: ezc3d's own force-platform extraction (same maths, independent code) on loaded samples,
plate geometry (COP within the corners), physics (vertical force in a body-weight range, small
free moment).
"""

from __future__ import annotations

from pathlib import Path

import ezc3d
import numpy as np
import pytest

from pipeline.io.c3d import read_c3d
from pipeline.signals.forceplates import plate_wrench

Z_UP = {"x": "+x", "y": "+z", "z": "-y"}
FILES = {
    # name: (relative path, markers, analogs, plates, plate type, loaded plates, up axis)
    "BTS": ("ezc3d-testFiles/BTS.c3d", 22, 44, 6, 2, 3, 1),
    "Qualisys": ("ezc3d-testFiles/Qualisys.c3d", 55, 69, 2, 2, 2, 2),
    "FP_Type1": ("ezc3d-testFiles/FP_Type1.c3d", 22, 24, 4, 1, 0, 2),
    "walking2": ("opensim-core/c3d/walking2.c3d", 44, 12, 2, 2, 2, 2),
    "walking5": ("opensim-core/c3d/walking5.c3d", 40, 12, 2, 2, 2, 2),
}


@pytest.fixture(params=sorted(FILES))
def case(request: pytest.FixtureRequest, shared_data: Path):
    name = request.param
    return name, shared_data / FILES[name][0], FILES[name]


def test_everything_is_read(case) -> None:
    name, path, (_, n_markers, n_analogs, n_plates, ptype, _, _) = case
    rec = read_c3d(path)
    assert len(rec.markers.labels) == n_markers == rec.markers.xyz_m.shape[1]
    assert len(rec.analogs.labels) == n_analogs == rec.analogs.values.shape[1]
    assert len(rec.plates) == n_plates and {p.plate_type for p in rec.plates} == {ptype}
    raw = ezc3d.c3d(str(path))
    ratio = rec.analogs.rate_hz / rec.markers.rate_hz
    assert rec.analogs.values.shape[0] == pytest.approx(rec.markers.n_frames * ratio)
    np.testing.assert_allclose(rec.analogs.values, raw["data"]["analogs"][0].T)
    # Markers in metres; missing samples are NaN, never zeros.
    finite = rec.markers.xyz_m[np.isfinite(rec.markers.xyz_m)]
    assert np.abs(finite).max() < 20.0
    assert not np.any(np.all(rec.markers.xyz_m == 0, axis=2))


def test_plates_match_ezc3d_and_physics(case) -> None:
    name, path, (*_, n_loaded, up_axis) = case
    rec = read_c3d(path)
    platforms = ezc3d.c3d(str(path), extract_forceplat_data=True)["data"]["platform"]
    loaded = 0
    for plate, ez in zip(rec.plates, platforms, strict=True):
        w = plate_wrench(plate, threshold_n=20.0, cutoff_hz=None, remove_baseline=False)
        m = w.loaded
        assert not np.any(w.force_n[~m]) and not np.any(w.cop_m[~m])
        if not m.any():
            continue
        loaded += 1
        scale = 1e-3 if ez["unit_position"] == "mm" else 1.0
        # Same wrench as ezc3d up to the reaction sign (ezc3d keeps the file's convention).
        np.testing.assert_allclose(np.abs(w.force_n[m]), np.abs(ez["force"].T[m]), atol=1e-6)
        np.testing.assert_allclose(w.cop_m[m], ez["center_of_pressure"].T[m] * scale, atol=1e-6)
        # Reaction points up, within a body-weight range for these adult walkers.
        assert w.force_n[m, up_axis].min() > 0
        assert 400.0 < w.force_n[m, up_axis].max() < 1500.0


def test_filtered_cop_within_corners_and_small_free_moment(case) -> None:
    name, path, (*_, n_loaded, _) = case
    rec = read_c3d(path)
    loaded = 0
    for plate in rec.plates:
        w = plate_wrench(plate, threshold_n=20.0, cutoff_hz=6.0)
        m = w.loaded
        assert not np.any(w.cop_m[~m]) and not np.any(w.free_moment_nm[~m])
        if not m.any():
            continue
        loaded += 1
        lo, hi = plate.corners_m.min(0) - 0.02, plate.corners_m.max(0) + 0.02
        assert np.all((w.cop_m[m] >= lo) & (w.cop_m[m] <= hi))
        assert np.abs(w.free_moment_nm[m]).max() < 15.0  # N m: small next to body moments
    assert loaded == n_loaded


def test_qualisys_events(shared_data: Path) -> None:
    rec = read_c3d(shared_data / "ezc3d-testFiles/Qualisys.c3d")
    assert [e.label for e in rec.events] == ["LHS", "RTO", "RHS", "LTO", "LHS", "RTO", "RHS"]
    assert rec.events[0].time_s == pytest.approx(3.59, abs=1e-4)
    assert rec.manufacturer == "Qualisys"
    t = rec.marker_times_s
    assert t[0] <= rec.events[0].time_s and rec.events[-1].time_s <= t[-1]


def test_walking_markers_pipeline(shared_data: Path) -> None:
    from pipeline.signals.markers import process_markers

    rec = read_c3d(shared_data / "opensim-core/c3d/walking2.c3d")
    table = process_markers(rec, lab_frame=Z_UP, cutoff_hz=6.0, max_gap_s=0.1, long_gap="warn")
    heel = table.xyz_m[:, table.labels.index("RCAL")]
    assert np.nanmin(heel[:, 1]) > -0.05 and np.nanmax(heel[:, 1]) < 0.5  # Y up, near floor


def test_plug_in_gait_model_outputs_do_not_refuse_a_real_session(shared_data: Path) -> None:
    """Vicon stores Plug-in Gait moments and powers as POINT data, some of them more than 10 m
    'from the origin'. The units check looks at the typical marker, so the session is read; a
    file whose markers are all scaled by a units mistake is still refused (bad-input corpus)."""
    path = shared_data / "real-sessions" / "biomechzoo-hc002d" / "HC002D06_straight.c3d"
    recording = read_c3d(path)
    distance = np.linalg.norm(recording.markers.xyz_m, axis=2)
    assert np.nanmax(distance) > 10.0  # the model outputs that used to refuse the file
    heel = recording.markers.labels.index("RHEE")
    assert np.nanmedian(distance[:, heel]) < 10.0
