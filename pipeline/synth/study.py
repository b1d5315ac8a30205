"""Write the demo study: C3D files, config.yaml, subjects.tsv, trials.tsv and truth.json.

Layout (``<trial>`` as in :mod:`pipeline.synth.plans`)::

    <dir>/config.yaml  subjects.tsv  trials.tsv  truth.json
    <dir>/c3d/<subject>/<trial>.c3d

C3D content: markers in mm in the lab frame (Z up; OpenSim positions rotated with the inverse of
``lab_frame``) with 1 mm Gaussian noise, and one 5-frame gap (NaN, residual -1) in one marker of
the first dynamic arm trial; EMG channels ``EMG1``... in volts at 2000 Hz; for the leg, two type-2
force plates (plate 1 under the right foot, plate 2 under the left) with 0.5 N / 100 N mm noise.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.fileio import write_json_atomic, write_text_atomic
from pipeline.nms.model import TendonModel
from pipeline.osim.models import default_dofs, muscle_names
from pipeline.signals.frames import lab_to_opensim
from pipeline.synth import emg
from pipeline.synth.c3d_writer import AnalogChannel, Plate, write_c3d
from pipeline.synth.parameters import PARAMETER_KEYS
from pipeline.synth.plans import (
    ANALOG_RATE_HZ,
    ARM_STRENGTH_GROUPS,
    LEG_STRENGTH_GROUPS,
    POINT_RATE_HZ,
    arm_plan,
    leg_plan,
)
from pipeline.synth.subject import SubjectData, TrialData, simulate_subject

log = logging.getLogger(__name__)

LAB_FRAME = {"x": "+x", "y": "+z", "z": "-y"}
MARKER_NOISE_MM = 1.0
FORCE_NOISE_N = 0.5
MOMENT_NOISE_NMM = 100.0
GAP_FRAMES = 5
EMD_S = 0.015
TENDON: TendonModel = "elastic"
INITIAL = {"c1": -0.5, "c2": -0.5, "shape_factor": -1.5}
#: second element of the seed of each subject's inertial-truth generator
INERTIA_STREAM = 17


def plans(*, small: bool) -> list:
    arm_muscles = muscle_names("demo-arm-dumbbell")
    leg_muscles = tuple(m for m in muscle_names("demo-leg") if m.endswith("_r"))
    return [arm_plan(small=small, muscles=arm_muscles, dofs=default_dofs("demo-arm-dumbbell")),
            leg_plan(small=small, muscles=leg_muscles, dofs=default_dofs("demo-leg"))]


def generate_demo_study(directory: str | Path, *, seed: int = 0, small: bool = False) -> Path:
    """Write a complete synthetic study to ``directory`` and return its path."""
    start = time.perf_counter()
    root = Path(directory)
    rng = np.random.default_rng(seed)
    # the segments' inertial truth has its own stream, so it leaves the muscle truth and the
    # noise of a seed as they were before segments were perturbed
    subjects = [simulate_subject(plan, rng=rng, emd_s=EMD_S, tendon=TENDON, initial=INITIAL,
                                 inertia_rng=np.random.default_rng([seed, INERTIA_STREAM, i]))
                for i, plan in enumerate(plans(small=small))]
    level = emg.unit_envelope_level(rate_hz=ANALOG_RATE_HZ, filters=ENVELOPE_FILTERS)
    rows = []
    gap_done = False
    for subject in subjects:
        gains = rng.uniform(0.3e-3, 1.5e-3, len(subject.plan.muscles))
        for trial in subject.trials:
            rel = f"c3d/{subject.plan.subject}/{trial.plan.name}.c3d"
            gap = not gap_done and trial.plan.kind == "dynamic"
            gap_done = gap_done or gap
            _write_trial(root / rel, subject, trial, gains=gains, level=level, rng=rng, gap=gap)
            rows.append((subject.plan.subject, trial.plan.name, rel, trial.plan.kind,
                         trial.plan.role))
    _write_sheets(root, subjects, rows)
    write_text_atomic(root / "config.yaml", config_text(subjects))
    write_json_atomic(root / "truth.json", truth(subjects, seed=seed))
    for path in [root / "c3d", *root.rglob("*")]:  # atomic writes create 0600 files
        path.chmod(0o755 if path.is_dir() else 0o644)
    log.info("demo study written to %s in %.1f s", root, time.perf_counter() - start)
    return root


def _to_lab_mm(vectors_m: np.ndarray) -> np.ndarray:
    rotation = lab_to_opensim(LAB_FRAME)  # v_opensim = R v_lab
    return 1000.0 * np.asarray(vectors_m) @ rotation  # (R^T v)^T = v^T R


def _write_trial(path: Path, subject: SubjectData, trial: TrialData, *, gains: np.ndarray,
                 level: float, rng: np.random.Generator, gap: bool) -> None:
    n_frames = trial.motion.n_frames
    n_analog = int(n_frames * ANALOG_RATE_HZ / POINT_RATE_HZ)
    markers = {name: _to_lab_mm(xyz) + rng.normal(0.0, MARKER_NOISE_MM, xyz.shape)
               for name, xyz in trial.markers_m.items()}
    missing = None
    if gap:
        name = list(markers)[-1]
        mask = np.zeros(n_frames, dtype=bool)
        first = n_frames // 2
        mask[first:first + GAP_FRAMES] = True
        missing = {name: mask}
        log.info("%s: marker %s missing for %d frames from frame %d", path, name, GAP_FRAMES,
                 first)
    raw = emg.raw_emg(trial.channel_excitation, gains_v=gains, point_rate_hz=POINT_RATE_HZ,
                      analog_rate_hz=ANALOG_RATE_HZ, n_analog=n_analog, rng=rng)
    if trial.plan.kind == "mvc":
        raw = emg.scale_mvc(raw, gains_v=gains, rate_hz=ANALOG_RATE_HZ, level=level,
                            filters=ENVELOPE_FILTERS)
    labels = list(subject.plan.emg_channels)
    analogs = [AnalogChannel(label, "V", raw[i]) for i, label in enumerate(labels)]
    plates = []
    for foot in trial.feet:
        plate = foot_plate(subject, foot.side)
        upsample = {key: emg.upsample(value.T, point_rate_hz=POINT_RATE_HZ,
                                      analog_rate_hz=ANALOG_RATE_HZ, n_analog=n_analog).T
                    for key, value in (("f", foot.force_n), ("p", foot.cop_m),
                                       ("t", foot.torque_nm))}
        channels = plate.channels(_to_lab_mm(upsample["f"]) / 1000.0, _to_lab_mm(upsample["p"]),
                                  _to_lab_mm(upsample["t"]))
        channels[:, :3] += rng.normal(0.0, FORCE_NOISE_N, (n_analog, 3))
        channels[:, 3:] += rng.normal(0.0, MOMENT_NOISE_NMM, (n_analog, 3))
        plates.append((plate, channels))
    write_c3d(path, point_rate_hz=POINT_RATE_HZ, markers_mm=markers,
              analog_rate_hz=ANALOG_RATE_HZ, analogs=analogs, plates=plates, missing=missing)


def foot_plate(subject: SubjectData, side: str) -> Plate:
    """Plate 1 under the right foot, plate 2 under the left, centred under each standing foot."""
    standing = subject.trials[0]
    heel = _to_lab_mm(standing.markers_m[("R" if side == "r" else "L") + "HEE"][0])
    toe = _to_lab_mm(standing.markers_m[("R" if side == "r" else "L") + "TOE"][0])
    centre_x = float(round(0.5 * (heel[0] + toe[0]), -1))
    return Plate((centre_x, -200.0 if side == "r" else 200.0, 0.0))


def _write_sheets(root: Path, subjects: list[SubjectData], rows: list[tuple]) -> None:
    # mass_kg: the generic model's total, not the true one (truth.json ``true_mass_kg``). The
    # ScaleTool spreads mass_kg over every body in proportion, the arm's dumbbell included: a
    # different total would change the known payload that anchors the arm's motion calibration.
    # So the scaled model keeps the generic inertias (the prior the motion method starts from,
    # and what the pipeline's own inverse dynamics uses); the leg's true mass is in its ground
    # reactions, the arm's force scale in its dumbbell.
    lines = ["# Demo study subjects (generated by `python -m pipeline demo-study`).",
             "subject\tmass_kg\theight_m\tmodel"]
    for s in subjects:
        lines.append(f"{s.plan.subject}\t{s.mass_kg:.3f}\t1.80\t{s.plan.model}")
    write_text_atomic(root / "subjects.tsv", "\n".join(lines) + "\n")
    lines = ["# Demo study trials (generated). Truth: truth.json.",
             "subject\ttrial\tfile\tkind\trole\tstart_s\tend_s"]
    lines += ["\t".join(row) + "\t\t" for row in rows]
    write_text_atomic(root / "trials.tsv", "\n".join(lines) + "\n")


#: The demo's calibration settings, chosen for what its data can identify (see the README):
#: * ``parameters``: c1 and c2 are left at their initial values. With 3 Hz envelopes the
#:   activation filter's fast poles are invisible in the moments (the true c1, c2 differ from the
#:   initial ones and calibrating them only adds noise). The shape factor and the group strengths
#:   are well determined; fibre and tendon slack lengths weakly (see the prior below).
#: * ``activation_sharing: global``: one shape factor per subject (the truth has one per subject).
#: * ``groups``: one strength coefficient per functional group (``ARM_STRENGTH_GROUPS``,
#:   ``LEG_STRENGTH_GROUPS`` in plans.py; the truth has one strength per group). Per-muscle
#:   strengths of synergists are not identifiable from net joint moments: calibrated per muscle,
#:   the full study's strengths ended no closer to the truth than the scaled model (15.9 vs
#:   13.0 %), and the identifiability analysis flagged 12 of the arm's 16.
#: * bounds centred on the initial values (strength 0.5-1.5, tendon slack length +-7 %) and a
#:   prior at the scaled model (``prior_weight: 1``, see pipeline/calibrate/losses.py): with ~6 %
#:   envelope noise and two or three short calibration trials, per-muscle fibre and tendon slack
#:   lengths are weakly determined (the identifiability analysis flags most of them), and without
#:   the prior the fit moves them to explain noise (with per-muscle strengths they ended further
#:   from the truth than the scaled model, and held-out R^2 dropped by ~0.05); with it, every
#:   calibrated type ends closer to the truth than the scaled model.
#: * optimiser: the config defaults (bounded least squares with exact Jacobians).
#: * EMG: band-pass 20-450 Hz and a 3 Hz envelope: the demo's excitations vary below 2 Hz, and
#:   the wider band and lower cut-off halve the envelope noise of the 5 Hz default.
DEMO_CALIBRATION: dict[str, Any] = {
    "methods": ["gradient", "synergy_hybrid"],
    "tendon": TENDON,
    "emd_s": EMD_S,
    "parameters": ["shape_factor", "optimal_fiber_length", "tendon_slack_length", "strength"],
    "activation_sharing": "global",
    "initial": {"c1": INITIAL["c1"], "c2": INITIAL["c2"],
                "shape_factor": INITIAL["shape_factor"]},
    "bounds": {"strength": {"lower": 0.5, "upper": 1.5},
               "tendon_slack_length": {"lower": 0.93, "upper": 1.07, "relative": True}},
    "prior_weight": 1.0,
    "groups": {name: list(members) for name, members in
               {**ARM_STRENGTH_GROUPS, **LEG_STRENGTH_GROUPS}.items()},
    "seed": 0,
}
DEMO_EMG: dict[str, Any] = {"bandpass_hz": [20.0, 450.0], "lowpass_hz": 3.0}
#: The demo config's envelope chain, with which the MVC trials are scaled (see synth/emg.py).
ENVELOPE_FILTERS = {"bandpass_hz": tuple(DEMO_EMG["bandpass_hz"]),
                    "lowpass_hz": DEMO_EMG["lowpass_hz"]}
#: Low-pass of markers, force plates and coordinates for ID: 4 Hz (default 6 Hz). The demo's
#: movements vary below ~2 Hz, and ID differentiates the coordinates twice, so the 1 mm marker noise
#: reaches the moments as ~(cut-off)^2.5: at 6 Hz the arm's ID noise is ~2 % of its peak moments,
#: at 4 Hz ~1 % (the consistency check of tests/workflow/test_demo_e2e.py allows 2 %).
DEMO_CUTOFF_HZ = 4.0
DEMO_SYNERGIES = {"n_synergies": 4, "reconstruction_weight": 10.0}


def config_text(subjects: list[SubjectData]) -> str:
    config: dict[str, Any] = {
        "lab_frame": LAB_FRAME,
        "markers": {"cutoff_hz": DEMO_CUTOFF_HZ},
        "force_plates": {"cutoff_hz": DEMO_CUTOFF_HZ},
        "opensim": {"id": {"cutoff_hz": DEMO_CUTOFF_HZ}},
        "emg": DEMO_EMG,
        "models": {s.plan.model: s.plan.config_entry() for s in subjects},
        "calibration": DEMO_CALIBRATION,
        "synergies": DEMO_SYNERGIES,
    }
    header = ("# Demo study settings (generated by `python -m pipeline demo-study`). Anything\n"
              "# omitted takes its default (print them with `python -m pipeline defaults`).\n"
              "# The true muscle parameters and signals are in truth.json. Why these calibration\n"
              "# settings: see pipeline/synth/study.py (DEMO_CALIBRATION) and the README.\n")
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=100)


def _series(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def _solved(excitation: np.ndarray | None) -> np.ndarray:
    """A dynamic trial's solved muscle excitations (every dynamic trial has them)."""
    if excitation is None:
        raise ValueError("a dynamic trial has no solved excitations")
    return excitation


def truth(subjects: list[SubjectData], *, seed: int) -> dict[str, Any]:
    """The truth.json document (see DESIGN.md); extra keys document the residuals and loads.

    Per subject, ``bodies`` holds the true segment inertial parameters (mass, centre of mass and
    inertia about it in the body frame, xx yy zz xy xz yz) and ``generic_bodies`` the generic
    model's; per trial, ``id_moments_nm`` is inverse dynamics of the true model and
    ``model_id_moments_nm`` that of the generic inertias on the same motion and loads.
    """
    out: dict[str, Any] = {"seed": seed, "tendon": TENDON, "emd_s": EMD_S, "subjects": {}}
    for s in subjects:
        generic = s.generic.as_json()
        entry: dict[str, Any] = {
            "model": s.plan.model,
            "parameters": s.true.as_json(),
            "initial_parameters": {m: {k: v[k] for k in PARAMETER_KEYS}
                                   for m, v in generic.items()},
            "true_mass_kg": s.true_mass_kg,
            "bodies": {b: v.as_json() for b, v in s.true_bodies.items()},
            "generic_bodies": {b: v.as_json() for b, v in s.generic_bodies.items()},
            "known_bodies": list(s.plan.known_bodies),
            "trials": {},
        }
        for trial in s.trials:
            if trial.plan.kind != "dynamic":
                continue
            record: dict[str, Any] = {
                "time_s": _series(trial.motion.time_s),
                "moments_nm": {d: _series(v) for d, v in trial.muscle_moments_nm.items()},
                "excitations": {m: _series(_solved(trial.excitation)[i])
                                for i, m in enumerate(s.plan.muscles)},
                "coordinates": {c: _series(v) for c, v in trial.motion.q.items()},
                "id_moments_nm": {d: _series(v) for d, v in trial.id_moments_nm.items()},
                "model_id_moments_nm": {d: _series(v)
                                        for d, v in trial.model_id_moments_nm.items()},
                "residual_actuators_nm": {
                    d: _series(trial.id_moments_nm[d] - trial.muscle_moments_nm[d])
                    for d in s.plan.dofs},
            }
            if trial.feet:
                record["ground_reactions"] = {
                    f.side: {"force_n": f.force_n.round(4).tolist(),
                             "cop_m": f.cop_m.round(6).tolist(),
                             "free_moment_nm": f.torque_nm.round(4).tolist()}
                    for f in trial.feet}
            entry["trials"][trial.plan.name] = record
        out["subjects"][s.plan.subject] = entry
    return out
