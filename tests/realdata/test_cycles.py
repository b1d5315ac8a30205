"""Cycles with roles: one walk, two rows of trials.tsv selecting its cycles by number, or one
``split`` row whose roles the config's ``cycles`` rule gives, counting one foot's cycles.

MOtoNMS Control1 Walking1 has two plate contacts (right foot on plate 1, left on plate 2). The
row with ``cycles: 1`` calibrates on the first contact, the row with ``cycles: 2-`` validates on
the second; their windows are the plates' contact times (vertical force above the threshold).
The msk-athlete1 sprint has three plate contacts, right-left-right, and the C3D's own right
foot-strike and foot-off events: ``cycles: {side: right, calibration: "1", validation: "2-"}``
gives the first right stance to calibration and the second to validation, at the C3D's times.
"""

from __future__ import annotations

import json
import subprocess
import sys

import ezc3d
import numpy as np
import pytest
from project_paths import PROJECT_ROOT

from pipeline.signals.events import parse_cycles, select_cycles
from pipeline.study import load_study


def test_parse_and_select():
    assert parse_cycles("1-2, 4, 6-") == [(1, 2), (4, 4), (6, None)]
    windows = [[3.0, 4.0], [1.0, 2.0], [5.0, 6.0]]
    assert select_cycles(windows, "2-") == ([[3.0, 4.0], [5.0, 6.0]], [2, 3])
    with pytest.raises(Exception, match="selects none"):
        select_cycles(windows, "4")


def _contacts(path, threshold_n=20.0):
    """Contact (first, last) times per plate straight from the C3D's Fz channels."""
    c3d = ezc3d.c3d(str(path))
    labels = c3d["parameters"]["ANALOG"]["LABELS"]["value"]
    rate = float(c3d["parameters"]["ANALOG"]["RATE"]["value"][0])
    analogs = c3d["data"]["analogs"][0]
    spans = []
    for name in ("Fz1", "Fz2"):
        fz = np.abs(analogs[labels.index(name)])
        on = np.flatnonzero(fz > threshold_n)
        spans.append((on[0] / rate, on[-1] / rate))
    return sorted(spans)


def test_cycle_rows_get_their_plate_contacts(shared_data, tmp_path):
    walk = shared_data / "real-sessions" / "motonms-unipd-control1" / "Walking1.c3d"
    static = walk.with_name("Static1.c3d")
    study = tmp_path / "study"
    study.mkdir()
    (study / "config.yaml").write_text(
        'lab_frame: {x: "+z", y: "+y", z: "-x"}\nevents: {source: grf}\n'
        "force_plates: {foot_markers: {left: [LCA], right: [RCA]}}\n"
        "models:\n  demo-leg:\n    force_plates: true\n    emg_channels:\n"
        '      "Right Soleus": soleus\n    excitations: {soleus_r: {soleus: 1}}\n'
        "    dofs: [ankle_angle_r]\n")
    (study / "subjects.tsv").write_text("subject\tmass_kg\theight_m\tmodel\n"
                                        "c1\t84\t1.8\tdemo-leg\n")
    (study / "trials.tsv").write_text(
        "subject\ttrial\tfile\tkind\trole\tcycles\n"
        f"c1\tstatic\t{static}\tstatic\tnone\t\n"
        f"c1\twalk1a\t{walk}\tdynamic\tcalibration\t1\n"
        f"c1\twalk1b\t{walk}\tdynamic\tvalidation\t2-\n")
    windows = {}
    for trial in ("walk1a", "walk1b"):
        out = tmp_path / f"{trial}.json"
        result = subprocess.run([sys.executable, "-m", "pipeline", "events", "--study",
                                 str(study), "--subject", "c1", "--trial", trial, "--out",
                                 str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        windows[trial] = json.loads(out.read_text())
    contacts = _contacts(walk)
    assert windows["walk1a"]["cycle_numbers"] == [1]
    assert windows["walk1b"]["cycle_numbers"] == [2]
    # Filtered plate forces cross the threshold within two analog samples of the raw ones.
    np.testing.assert_allclose(windows["walk1a"]["windows"][0], contacts[0], atol=0.01)
    np.testing.assert_allclose(windows["walk1b"]["windows"][0], contacts[1], atol=0.01)


def _c3d_events(path, label, context):
    c3d = ezc3d.c3d(str(path))
    event = c3d["parameters"]["EVENT"]
    times = event["TIMES"]["value"]
    return sorted(float(times[1][i]) for i, (lab, ctx) in
                  enumerate(zip(event["LABELS"]["value"], event["CONTEXTS"]["value"],
                                strict=True)) if lab == label and ctx == context)


def _events_json(study, subject, trial, out):
    result = subprocess.run([sys.executable, "-m", "pipeline", "events", "--study", str(study),
                             "--subject", subject, "--trial", trial, "--out", str(out)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    return result, (json.loads(out.read_text()) if out.is_file() else None)


def _study(tmp_path, *, static, walk, cycles, extra=""):
    study = tmp_path / "study"
    study.mkdir()
    (study / "config.yaml").write_text(
        'lab_frame: {x: "+x", y: "+z", z: "-y"}\n'
        f"events: {{source: grf, min_cycle_s: 0.1}}\ncycles: {cycles}\n{extra}"
        "force_plates: {foot_markers: {left: [LHEE, LCA], right: [RHEE, RCA]}}\n"
        "models:\n  demo-leg:\n    force_plates: true\n    emg_channels: {}\n"
        "    excitations: {soleus_r: {}}\n    dofs: [ankle_angle_r]\n")
    (study / "subjects.tsv").write_text("subject\tmass_kg\theight_m\tmodel\n"
                                        "a1\t70\t1.8\tdemo-leg\n")
    (study / "trials.tsv").write_text(
        "subject\ttrial\tfile\tkind\trole\n"
        f"a1\tstatic\t{static}\tstatic\tnone\n"
        f"a1\trun\t{walk}\tdynamic\tsplit\n")
    return study


def test_split_row_gives_right_stances_at_the_c3d_events(shared_data, tmp_path):
    """One sprint row, role split: its first right stance calibrates, the second validates."""
    sprint = shared_data / "real-sessions" / "msk-athlete1" / "sprint_1.c3d"
    study = _study(tmp_path, static=sprint.with_name("static_1.c3d"), walk=sprint,
                   cycles='{side: right, calibration: "1", validation: "2-"}')
    trials = {r["trial"]: r for r in load_study(study).trials}
    assert set(trials) == {"static", "run-calibration", "run-validation"}
    assert trials["run-calibration"]["role"] == "calibration"
    assert trials["run-validation"]["cycles"] == "2-"
    strikes = _c3d_events(sprint, "Foot Strike", "Right")
    offs = [t for t in _c3d_events(sprint, "Foot Off", "Right")
            if any(0 < t - s < 0.3 for s in strikes)]  # the offs ending those stances
    assert len(strikes) == 2 and len(offs) == 2
    got = {}
    for trial in ("run-calibration", "run-validation"):
        result, got[trial] = _events_json(study, "a1", trial, tmp_path / f"{trial}.json")
        assert result.returncode == 0, result.stderr[-3000:]
    cal, val = got["run-calibration"], got["run-validation"]
    assert cal["side"] == "right" and cal["sides"] == ["r"] and val["sides"] == ["r"]
    # The left stance (plate 3, 3.85-4.04 s) is not counted: two right stances in all.
    assert len(cal["all_windows"]) == 2 and cal["cycle_numbers"] == [1]
    assert val["cycle_numbers"] == [2]
    # Plate contact (filtered force above 20 N) against the C3D's foot strike and foot off:
    # within 1.5 frames at 200 Hz.
    np.testing.assert_allclose(cal["windows"][0], [strikes[0], offs[0]], atol=0.0075)
    np.testing.assert_allclose(val["windows"][0], [strikes[1], offs[1]], atol=0.0075)


def test_side_picks_each_foots_plate_contact(shared_data, tmp_path):
    """MOtoNMS Walking1: the right stance on plate 1 starts at the C3D's right foot strike."""
    walk = shared_data / "real-sessions" / "motonms-unipd-control1" / "Walking1.c3d"
    contacts = _contacts(walk)
    windows = {}
    for side in ("right", "left"):
        folder = tmp_path / side
        folder.mkdir()
        study = _study(folder, static=walk.with_name("Static1.c3d"), walk=walk,
                       cycles=f'{{side: {side}, calibration: "1"}}')
        result, windows[side] = _events_json(study, "a1", "run-calibration",
                                             folder / "events.json")
        assert result.returncode == 0, result.stderr[-3000:]
    assert windows["right"]["sides"] == ["r"] and windows["left"]["sides"] == ["l"]
    np.testing.assert_allclose(windows["right"]["windows"][0], contacts[0], atol=0.01)
    np.testing.assert_allclose(windows["left"]["windows"][0], contacts[1], atol=0.01)
    strike = _c3d_events(walk, "Foot Strike", "Right")
    off = _c3d_events(walk, "Foot Off", "Right")
    np.testing.assert_allclose(windows["right"]["windows"][0], [strike[0], off[0]], atol=0.04)


def test_split_trials_take_their_rows_plate_assignment(shared_data, tmp_path):
    sprint = shared_data / "real-sessions" / "msk-athlete1" / "sprint_1.c3d"
    study = _study(tmp_path, static=sprint.with_name("static_1.c3d"), walk=sprint,
                   cycles='{calibration: "1", validation: "2-"}')
    config = study / "config.yaml"
    config.write_text(config.read_text().replace(
        "force_plates: {", 'force_plates: {assignment: {a1/run: {"2": none}}, '))
    loaded = load_study(study)
    for trial in ("run-calibration", "run-validation"):
        assert loaded.plate_assignment("a1", trial) == {"2": "none"}
    assert loaded.plate_assignment("a1", "static") is None


def test_split_row_mistakes_are_named(shared_data, tmp_path):
    walk = shared_data / "real-sessions" / "motonms-unipd-control1" / "Walking1.c3d"
    study = _study(tmp_path, static=walk.with_name("Static1.c3d"), walk=walk,
                   cycles="{side: right}")
    with pytest.raises(Exception, match=r"trials.tsv row 3: role split, but config.yaml sets "
                       r"neither cycles.calibration"):
        load_study(study)
