"""Entering from OpenSim files: which source each trial file has, the per-rule constraints that
keep two rules from writing one file, and the sheet problems (pipeline/plan.py)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.plan import (
    C3D,
    COMPUTED,
    GIVEN,
    RAW,
    pair_constraint,
    source_problems,
    trial_plan,
)


def row(**cells: str) -> dict[str, str]:
    base = {"subject": "s1", "trial": "t1", "file": "", "kind": "dynamic", "role": "calibration",
            "_row": 2}
    return {**base, **cells}


def test_given_files_replace_exactly_their_stages() -> None:
    c3d = trial_plan(row(file="a.c3d"), force_plates=True, emg_input="envelope")
    assert (c3d.markers, c3d.grf, c3d.ik, c3d.id, c3d.emg, c3d.events) == (
        C3D, C3D, COMPUTED, COMPUTED, C3D, True)
    files = trial_plan(row(ik_file="ik.sto", id_file="id.sto", emg_file="emg.sto"),
                       force_plates=True, emg_input="envelope")
    assert (files.markers, files.grf, files.ik, files.id, files.emg, files.events) == (
        None, None, GIVEN, GIVEN, GIVEN, False)
    # IK given with GRF: ID is computed from them; raw EMG is processed.
    mixed = trial_plan(row(ik_file="ik.mot", grf_file="g.mot", external_loads_file="g.xml",
                           emg_file="raw.sto"), force_plates=True, emg_input="raw")
    assert (mixed.ik, mixed.grf, mixed.id, mixed.emg) == (GIVEN, GIVEN, COMPUTED, RAW)
    # Force plates needed but no GRF source: no ID.
    assert trial_plan(row(ik_file="ik.mot"), force_plates=True, emg_input="envelope").id is None
    assert trial_plan(row(ik_file="ik.mot"), force_plates=False,
                      emg_input="envelope").id == COMPUTED


def test_pair_constraint_matches_only_its_subject_trial_pairs() -> None:
    pattern = pair_constraint([("s1", "t1"), ("s2", "t2"), ("s1", "t3")])
    full = re.compile(rf"results/(?P<subject>{pattern})/trials/(?P<trial>[^/]+)/ik\.mot")
    for subject, trial, expected in (("s1", "t1", True), ("s1", "t3", True),
                                     ("s2", "t2", True), ("s2", "t1", False),
                                     ("s1", "t2", False), ("s10", "t1", False)):
        match = full.fullmatch(f"results/{subject}/trials/{trial}/ik.mot")
        assert bool(match) is expected, (subject, trial)
        if match:
            assert match["subject"] == subject
    never = re.compile(rf"results/(?P<subject>{pair_constraint([])})/trials/t1/ik\.mot")
    assert never.fullmatch("results/s1/trials/t1/ik.mot") is None


def test_sheet_problems_name_row_cause_and_fix(tmp_path: Path) -> None:
    (tmp_path / "ik.mot").write_text("x")
    subjects = [{"subject": "s1", "scaled_model": "", "_row": 2},
                {"subject": "s2", "scaled_model": "model.txt", "_row": 3}]
    trials = [row(ik_file="ik.mot", grf_file="g.mot", _row=2),
              row(subject="s2", trial="t2", ik_file="missing.sto", emg_file="e.csv", _row=3)]
    setups = {"s1": {"force_plates": False}, "s2": {"force_plates": False}}
    problems = source_problems(tmp_path, subjects, trials, setups=setups,
                               emg_input="envelope")
    text = "\n".join(problems)
    assert "subjects.tsv row 3: scaled_model model.txt is not a .osim file" in text
    assert "trials.tsv row 2: grf_file g.mot does not exist" in text
    assert "trials.tsv row 2: grf_file and external_loads_file go together" in text
    assert "trials.tsv row 2: trial 't1' has no source of EMG" in text
    assert "trials.tsv row 3: ik_file missing.sto does not exist" in text
    assert "trials.tsv row 3: emg_file e.csv is not a .sto or .mot file" in text
    assert "subject 's1' has no static trial" in text and "scaled_model column" in text
    assert "subject 's2' has no static trial" not in text
    assert all("Fix:" in p for p in problems)
