"""Cycles from C3D events, GRF stance and kinematic peaks; clipping to start_s/end_s."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import C3DError
from pipeline.io.c3d import Event
from pipeline.signals.events import (
    c3d_cycles,
    kinematic_cycles,
    stance_phases,
    trial_windows,
)

QUALISYS = [Event(lab, "", t) for lab, t in
            [("LHS", 3.59), ("RTO", 3.685), ("RHS", 4.05), ("LTO", 4.16), ("LHS", 4.535),
             ("RTO", 4.65), ("RHS", 5.03)]]


def test_c3d_cycles_same_foot_strikes() -> None:
    assert c3d_cycles(QUALISYS) == [(3.59, 4.535), (4.05, 5.03)]
    vicon = [Event("Foot Strike", "Right", 1.0), Event("Foot Off", "Right", 1.6),
             Event("Foot Strike", "Right", 2.1)]
    assert c3d_cycles(vicon) == [(1.0, 2.1)]


def test_stance_and_kinematic_cycles() -> None:
    t = np.arange(0, 6, 0.01)
    force = np.where((t > 1) & (t < 1.6), 500.0, 0.0)
    assert stance_phases(t, force, threshold_n=20.0) == [(1.01, 1.59)]
    xyz = np.zeros((len(t), 2, 3))
    xyz[:, 1, 0] = np.cos(2 * np.pi * 0.5 * t)  # peaks at 0, 2, 4 s
    cycles = kinematic_cycles(t, xyz, min_cycle_s=0.4)
    # Peaks or troughs (the main direction's sign is arbitrary): 2 s cycles either way.
    assert cycles and all(b - a == pytest.approx(2.0, abs=0.011) for a, b in cycles)


def test_trial_windows_sources_and_clipping() -> None:
    auto = trial_windows(source="auto", events=QUALISYS, stance=None, kinematics=None,
                         start_s=4.0, end_s=None, min_cycle_s=0.4)
    assert auto["source"] == "c3d" and auto["windows"] == [[4.05, 5.03]]
    grf = trial_windows(source="grf", events=QUALISYS, stance={"1": [(1.0, 1.7)]},
                        kinematics=None, start_s=None, end_s=2.0, min_cycle_s=0.4)
    assert grf["windows"] == [[1.0, 1.7]] and grf["stance"] == {"1": [[1.0, 1.7]]}
    with pytest.raises(C3DError, match="events.source"):
        trial_windows(source="kinematics", events=[], stance=None, kinematics=None,
                      start_s=None, end_s=None, min_cycle_s=0.4, file="t.c3d")


def test_side_keeps_one_foot_and_numbers_its_cycles() -> None:
    # QUALISYS: left cycle 3.59-4.535, right cycle 4.05-5.03 (sides from the labels).
    both = trial_windows(source="c3d", events=QUALISYS, stance=None, kinematics=None,
                         start_s=None, end_s=None, min_cycle_s=0.4)
    assert both["windows"] == [[3.59, 4.535], [4.05, 5.03]] and both["sides"] == ["l", "r"]
    right = trial_windows(source="c3d", events=QUALISYS, stance=None, kinematics=None,
                          start_s=None, end_s=None, min_cycle_s=0.4, side="right")
    assert right["windows"] == [[4.05, 5.03]] and right["sides"] == ["r"]
    # Plate contacts take the side of the foot each contact was given to.
    stance = {"1": [(1.0, 1.6), (3.0, 3.6)], "2": [(2.0, 2.6)]}
    grf = trial_windows(source="grf", events=[], stance=stance, kinematics=None,
                        start_s=None, end_s=None, min_cycle_s=0.4,
                        stance_sides={"1": ["r", "r"], "2": ["l"]}, side="right")
    assert grf["windows"] == [[1.0, 1.6], [3.0, 3.6]] and grf["sides"] == ["r", "r"]
    left = trial_windows(source="grf", events=[], stance=stance, kinematics=None,
                         start_s=None, end_s=None, min_cycle_s=0.4,
                         stance_sides={"1": ["r", "r"], "2": ["l"]}, side="left")
    assert left["windows"] == [[2.0, 2.6]]
    # auto: no left strike pair in the C3D events, so the left plate contact is taken.
    auto = trial_windows(source="auto", events=QUALISYS[1:4], stance=stance, kinematics=None,
                         start_s=None, end_s=None, min_cycle_s=0.4,
                         stance_sides={"1": ["r", "r"], "2": ["l"]}, side="left")
    assert auto["source"] == "grf" and auto["windows"] == [[2.0, 2.6]]


def test_side_without_sided_cycles_is_an_error() -> None:
    t = np.arange(0, 6, 0.01)
    xyz = np.zeros((len(t), 1, 3))
    xyz[:, 0, 0] = np.cos(2 * np.pi * 0.5 * t)
    unsided = trial_windows(source="kinematics", events=[], stance=None, kinematics=(t, xyz),
                            start_s=None, end_s=None, min_cycle_s=0.4)
    assert unsided["windows"] and set(unsided["sides"]) == {"?"}
    with pytest.raises(C3DError, match=r"t\.c3d.*no right-foot cycles.*cycles\.side: any"):
        trial_windows(source="kinematics", events=[], stance=None, kinematics=(t, xyz),
                      start_s=None, end_s=None, min_cycle_s=0.4, side="right", file="t.c3d")
