"""A real lab session from config and sheets alone (examples/motonms-gait2392), end to end.

MOtoNMS Control1: the lab's own marker names (UNIPD protocol) on the standard gait2392 model,
no hand-written OpenSim XML, two Bertec plates, 15 right-leg EMG channels, a subject who enters
the capture volume (the first ~1.5 s of every walk has no markers). The assertions are physics
and the gait literature (Winter 2009, "Biomechanics and motor control of human movement"), not
the code's own output.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from project_paths import PROJECT_ROOT, SHARED_DATA
from workflow_helpers import run_snakemake

from pipeline.io.nms_inputs import read_nms_trial
from pipeline.io.opensim_files import read_sto

pytestmark = pytest.mark.slow
EXAMPLE = PROJECT_ROOT / "examples" / "motonms-gait2392"
G = 9.81


@pytest.fixture(scope="module")
def own_lab_study(tmp_path_factory):
    if not (SHARED_DATA / "real-sessions" / "motonms-unipd-control1").is_dir():
        pytest.skip(f"real session not found under {SHARED_DATA}")
    study = tmp_path_factory.mktemp("own_lab") / "study"
    study.mkdir()
    for name in ("config.yaml", "subjects.tsv", "trials.tsv"):
        text = (EXAMPLE / name).read_text(encoding="utf-8")
        (study / name).write_text(text.replace("../../../shared/data", str(SHARED_DATA)),
                                  encoding="utf-8")
    output = run_snakemake(study, timeout_s=3000)
    return study, output


def _trial(study, trial):
    return study / "results" / "control1" / "trials" / trial


def _mass(study):
    rows = [r.split("\t") for r in (study / "subjects.tsv").read_text().splitlines()
            if r and not r.startswith("#")]
    return float(rows[1][rows[0].index("mass_kg")])


def test_scaling_from_derived_measurements(own_lab_study):
    study, _ = own_lab_study
    report = json.loads((study / "results/control1/model/scale_report.json").read_text())
    bodies = report["bodies"]
    for body in ("pelvis", "femur_r", "tibia_r", "calcn_r", "torso"):
        assert bodies[body]["pairs"], body
        assert bodies[body]["source"] == "derived"
        assert all(0.7 <= f <= 1.4 for f in bodies[body]["factors"]), (body, bodies[body])
    assert bodies["pelvis"]["pairs"] == [["R.ASIS", "L.ASIS"]]
    # RIMH is seen in 1 of 107 static frames: it cannot be placed, so IK does not track it.
    assert "R.Toe.Med" in report["unplaced_markers_removed"]
    assert (study / "results/control1/model/measurement_set.xml").is_file()


def test_ik_error_and_marker_window(own_lab_study):
    study, _ = own_lab_study
    for trial in ("walk1", "walk2", "walk4"):
        errors = read_sto(_trial(study, trial) / "_ik_marker_errors.sto")
        rms = errors.column("marker_error_RMS")
        assert rms.mean() < 0.02, (trial, rms.mean())
        motion = read_sto(_trial(study, trial) / "ik.mot", state_values=True)
        # Frame 0 has no markers (the subject is outside the volume): IK starts later.
        assert motion.time_s[0] > 0.5, trial
        inverse = read_sto(_trial(study, trial) / "id.sto")
        # ID's low-pass resamples the coordinates (times within 1 µs of IK's): no frame
        # outside IK's range, one row per IK frame.
        assert inverse.time_s[0] >= motion.time_s[0] - 1e-4
        assert inverse.time_s[-1] <= motion.time_s[-1] + 1e-4
        assert len(inverse.time_s) == len(motion.time_s)


def test_grf_in_body_weights(own_lab_study):
    study, _ = own_lab_study
    weight_n = _mass(study) * G
    for trial in ("walk1", "walk2", "walk4"):
        grf = read_sto(_trial(study, trial) / "grf.mot")
        t = grf.time_s
        right, left = grf.column("ground_force_r_vy"), grf.column("ground_force_l_vy")
        for side, fy in (("right", right), ("left", left)):
            assert 1.0 <= fy.max() / weight_n <= 1.4, (trial, side, fy.max() / weight_n)
        # The plates' own weight estimate: over a right stance, the right foot's impulse plus
        # the left foot's during terminal double support, plus the trailing foot's push-off
        # at the start (by symmetry, the right foot's during terminal double support).
        on_r, on_l = np.flatnonzero(right > 20), np.flatnonzero(left > 20)
        hs, to, hs_l = t[on_r[0]], t[on_r[-1]], t[on_l[0]]
        dt = t[1] - t[0]
        stance, double = (t >= hs) & (t <= to), (t >= hs_l) & (t <= to)
        estimate = (right[stance].sum() + left[double].sum() + right[double].sum()) * dt
        assert estimate / (to - hs) == pytest.approx(weight_n, rel=0.06), trial
        # Walking direction: braking then propulsion along OpenSim +X.
        fx = grf.column("ground_force_r_vx")[stance]
        assert fx[: len(fx) // 3].min() < -0.1 * weight_n
        assert fx[-len(fx) // 3:].max() > 0.1 * weight_n


def test_id_moments_per_kg_in_normal_bands(own_lab_study):
    study, _ = own_lab_study
    mass = _mass(study)
    for trial in ("walk1", "walk2", "walk4"):
        inverse = read_sto(_trial(study, trial) / "id.sto")
        events = json.loads((_trial(study, trial) / "events.json").read_text())
        start, end = events["stance"]["1"][0]  # plate 1: the right foot
        keep = (inverse.time_s >= start) & (inverse.time_s <= end)
        ankle = inverse.column("ankle_angle_r_moment")[keep] / mass
        knee = inverse.column("knee_angle_r_moment")[keep] / mass
        hip = inverse.column("hip_flexion_r_moment")[keep] / mass
        # Winter: plantarflexor peak 1.2-1.7, knee extensor 0.3-1.0, hip 0.4-1.2 N·m/kg.
        assert 0.9 <= -ankle.min() <= 2.0, (trial, ankle.min())
        assert 0.2 <= knee.max() <= 1.4, (trial, knee.max())
        assert 0.2 <= np.abs(hip).max() <= 1.6, (trial, np.abs(hip).max())


def test_emg_and_calibration(own_lab_study):
    study, _ = own_lab_study
    for trial in ("walk1", "walk2", "walk4"):
        nms = read_nms_trial(_trial(study, trial) / "nms_inputs.npz")
        assert len(nms.mtu_names) == 15
        assert np.isfinite(nms.excitation).all()
        assert nms.excitation.min() >= 0.0 and nms.excitation.max() <= 1.0
        assert np.isfinite(nms.id_moment_nm).all()
    base = study / "results/control1/calibration/gradient"
    metrics = json.loads((base / "metrics.json").read_text())
    assert list(metrics["trials"]) == ["walk4"]  # validation on walk4
    # walk4's ankle angle rests on the heel marker alone (toe markers hidden in stance): its
    # ankle moment is not predicted as the calibration stances are, and validation says so
    # (the knee, 0.44 against 0.73, sits near the 0.3 limit: not asserted either way)
    flagged = metrics["generalisation"]["flagged"]
    ankle = flagged["ankle_angle_r"]
    assert ankle["cause"] == "drop" and ankle["n_held_out_trials"] == 1
    assert ankle["held_out_r2"] == pytest.approx(metrics["trials"]["walk4"]["ankle_angle_r"]["r2"])
    assert ankle["calibration_r2"] - ankle["held_out_r2"] > 0.3
    assert "hip_flexion_r" not in flagged
    assert (base / "calibrated.osim").is_file()
    report = (study / "results/report.html").read_text(encoding="utf-8")
    assert "Validation warnings: 1" in report  # one message for the method
    assert report.count('<td class="num flag">') == len(flagged)
    shutil.rmtree(study / ".snakemake", ignore_errors=True)
