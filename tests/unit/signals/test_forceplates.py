"""Force plates against a known ground reaction, threshold, foot assignment, wrench sums."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.bench.c3d import LAB_FRAME
from pipeline.errors import C3DError
from pipeline.io.c3d import read_c3d
from pipeline.signals.forceplates import Contact, foot_wrench, plate_wrench
from pipeline.signals.frames import lab_to_opensim
from pipeline.signals.grf import ground_reactions

FEET = {"right": ["RHEE"], "left": ["LHEE"]}


def test_wrench_matches_truth(synthetic_trial) -> None:
    path, truth = synthetic_trial
    rec = read_c3d(path)
    for plate, contact in zip(rec.plates, truth["contacts"], strict=True):
        w = plate_wrench(plate, threshold_n=20.0, cutoff_hz=None)
        m = w.loaded
        assert m.sum() > 100
        np.testing.assert_allclose(w.force_n[m], contact["force_n"][m], atol=1e-3)
        np.testing.assert_allclose(w.cop_m[m], contact["cop_m"][m], atol=1e-6)
        np.testing.assert_allclose(w.free_moment_nm[m], contact["free_nm"][m], atol=1e-4)
        # Below the threshold: exactly zero, never wild values.
        assert not np.any(w.force_n[~m]) and not np.any(w.cop_m[~m])
        assert np.all(contact["force_n"][~m, 2] <= 20.0 + 1e-6)


def test_filtered_cop_stays_on_plate_and_zero_elsewhere(synthetic_trial) -> None:
    path, _ = synthetic_trial
    rec = read_c3d(path)
    for plate in rec.plates:
        w = plate_wrench(plate, threshold_n=20.0, cutoff_hz=6.0)
        lo, hi = plate.corners_m.min(0) - 0.02, plate.corners_m.max(0) + 0.02
        assert np.all((w.cop_m[w.loaded] >= lo) & (w.cop_m[w.loaded] <= hi))
        assert not np.any(w.cop_m[~w.loaded])


def test_action_force_convention_is_negated_to_reaction(synthetic_trial) -> None:
    path, truth = synthetic_trial
    plate = read_c3d(path).plates[0]
    flipped = replace(plate, channels_si=-plate.channels_si)
    w = plate_wrench(flipped, threshold_n=20.0, cutoff_hz=None)
    m = w.loaded
    np.testing.assert_allclose(w.force_n[m], truth["contacts"][0]["force_n"][m], atol=1e-3)


def test_offset_is_removed(synthetic_trial) -> None:
    path, truth = synthetic_trial
    plate = read_c3d(path).plates[0]
    offset = np.array([2.0, -3.0, 15.0, 1.5, -1.0, 0.5])  # N and N m, plate frame
    shifted = replace(plate, channels_si=plate.channels_si + offset)
    w = plate_wrench(shifted, threshold_n=20.0, cutoff_hz=None)
    c = truth["contacts"][0]
    m = w.loaded & (c["force_n"][:, 2] > 100)
    np.testing.assert_allclose(w.cop_m[m], c["cop_m"][m], atol=2e-3)


def test_feet_assigned_and_override(synthetic_trial) -> None:
    path, _ = synthetic_trial
    rec = read_c3d(path)
    grf = ground_reactions(rec, lab_frame=LAB_FRAME, threshold_n=20.0, cutoff_hz=6.0,
                           foot_markers=FEET)
    assert [(c.plate, c.foot) for c in grf.contacts] == [(1, "right"), (2, "left")]
    vy_r = grf.table.column("ground_force_r_vy")
    vy_l = grf.table.column("ground_force_l_vy")
    assert vy_r.max() == pytest.approx(700.0, rel=0.02) and vy_l.max() == pytest.approx(700.0,
                                                                                        rel=0.02)
    assert not np.any(grf.table.column("ground_torque_r_x"))
    assert not np.any(grf.table.column("ground_torque_r_z"))
    swapped = ground_reactions(rec, lab_frame=LAB_FRAME, threshold_n=20.0, cutoff_hz=6.0,
                               foot_markers=FEET, assignment={"1": "left", "2": "right"})
    assert [(c.plate, c.foot) for c in swapped.contacts] == [(1, "left"), (2, "right")]


def test_no_foot_markers_is_clear_error(synthetic_trial) -> None:
    path, _ = synthetic_trial
    with pytest.raises(C3DError, match="foot_markers"):
        ground_reactions(read_c3d(path), lab_frame=LAB_FRAME, threshold_n=20.0, cutoff_hz=None,
                         foot_markers={"right": ["NOPE"], "left": []})


def test_two_plates_same_foot_sum_preserves_the_wrench(synthetic_trial) -> None:
    path, _ = synthetic_trial
    rec = read_c3d(path)
    wrenches = [plate_wrench(p, threshold_n=20.0, cutoff_hz=None) for p in rec.plates]
    n = wrenches[0].force_n.shape[0]
    contacts = [Contact(w.number, 0, n, "right") for w in wrenches]
    rot = lab_to_opensim(LAB_FRAME)
    total = foot_wrench(wrenches, contacts, "right", rotation=rot)
    f_sum = sum(w.force_n @ rot.T for w in wrenches)
    m_sum = sum(np.cross(w.cop_m @ rot.T, w.force_n @ rot.T) + w.free_moment_nm @ rot.T
                for w in wrenches)
    m_total = np.cross(total["point_m"], total["force_n"]) + total["torque_nm"]
    np.testing.assert_allclose(total["force_n"], f_sum, atol=1e-9)
    np.testing.assert_allclose(m_total, m_sum, atol=1e-6)
    assert not np.any(total["torque_nm"][:, [0, 2]])
