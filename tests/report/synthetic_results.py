"""A synthetic study with results in the DESIGN.md contract formats, for figure/report tests.

Physically plausible but made up: sinusoidal moments, excitations and forces; the point is that
every file exists in its contract format and every number in a figure can be traced to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from pipeline import resources
from pipeline.io.nms_inputs import NMSTrial, write_nms_trial
from pipeline.io.opensim_files import StoTable, write_sto

TEMPLATES = resources.template_dir()
MTUS = ("delt_ant", "delt_med", "biceps_long", "biceps_short", "triceps_long", "triceps_lateral")
DOFS = ("shoulder_elev", "elbow_flex")
TRIALS = {"flex1": "calibration", "flex2": "validation"}
PARAMS = {"optimal_fiber_length_m": (0.1, 0.85, 1.15), "tendon_slack_length_m": (0.2, 0.85, 1.15),
          "max_isometric_force_n": (800.0, 0.5, 2.5), "c1": (-0.5, None, None),
          "c2": (-0.5, None, None), "shape_factor": (-1.0, None, None)}
ABS_BOUNDS = {"c1": (-0.95, -0.05), "c2": (-0.95, -0.05), "shape_factor": (-2.999, -0.001)}


def make_study(root: Path, *, subjects: tuple[str, ...] = ("s01", "s02"),
               methods: tuple[str, ...] = ("gradient", "annealing")) -> Path:
    """Study sheets for ``subjects`` (each with flex1 calibration, flex2 validation) + results."""
    root.mkdir(parents=True, exist_ok=True)
    config = (TEMPLATES / "config.yaml").read_text()
    config = config.replace("methods: [gradient]", f"methods: [{', '.join(methods)}]")
    (root / "config.yaml").write_text(config)
    subject_rows = [f"{s}\t7{i}.0\t1.7{i}\tdemo-arm" for i, s in enumerate(subjects)]
    (root / "subjects.tsv").write_text("subject\tmass_kg\theight_m\tmodel\n"
                                       + "\n".join(subject_rows) + "\n")
    trial_rows = []
    for s in subjects:
        trial_rows.append(f"{s}\tstatic\tc3d/{s}/static.c3d\tstatic\tnone")
        trial_rows += [f"{s}\t{t}\tc3d/{s}/{t}.c3d\tdynamic\t{r}" for t, r in TRIALS.items()]
    (root / "trials.tsv").write_text("subject\ttrial\tfile\tkind\trole\n"
                                     + "\n".join(trial_rows) + "\n")
    for i, subject in enumerate(subjects):
        write_subject_results(root, subject, methods=methods, seed=i)
    return root


def _storage(path: Path, time_s: np.ndarray, names, values: np.ndarray) -> None:
    write_sto(path, StoTable(time_s, tuple(names), np.asarray(values).T))


def write_subject_results(root: Path, subject: str, *, methods: tuple[str, ...],
                          seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    time_s = np.linspace(0.0, 2.0, 201)
    base = root / "results" / subject
    metrics_by_method: dict[str, dict] = {m: {"trials": {}} for m in methods}
    for k, (trial, _role) in enumerate(TRIALS.items()):
        phase = 2 * np.pi * (time_s / 2.0) + 0.3 * k
        exc = np.clip(0.3 + 0.25 * np.sin(phase[None, :] + np.arange(len(MTUS))[:, None]), 0, 1)
        exc[-1] = np.nan  # triceps_lateral has no EMG
        arms = np.zeros((len(MTUS), len(DOFS), len(time_s)))
        arms[:, 0] = 0.02
        arms[:, 1] = 0.03
        moments = np.vstack([20 * np.sin(phase), 10 * np.cos(phase)])
        tdir = base / "trials" / trial
        write_nms_trial(tdir / "nms_inputs.npz", NMSTrial(
            time_s, MTUS, DOFS, exc, np.full((len(MTUS), len(time_s)), 0.3), arms, moments,
            meta={"subject": subject, "trial": trial}))
        errors = np.vstack([1e-4 * (1 + rng.random(len(time_s))),
                            0.006 + 0.002 * rng.random(len(time_s)),
                            0.012 + 0.004 * rng.random(len(time_s))])
        _storage(tdir / "_ik_marker_errors.sto", time_s,
                 ("total_squared_error", "marker_error_RMS", "marker_error_max"), errors)
        # Envelopes of the recorded channels, one of them flagged (the EMG figure shows both).
        emg_names = [m for m in MTUS if m != "triceps_lateral"]
        _storage(tdir / "emg.sto", time_s, emg_names, exc[:-1])
        (tdir / "emg_quality.json").write_text(json.dumps(
            {"channels": {name: {"flags": ["flat"] if name == "delt_med" else []}
                          for name in emg_names}}))
        stance = np.clip(np.sin(np.pi * time_s / 2.0), 0, None)
        grf = np.vstack([30 * stance, 700 * stance, 10 * stance,
                         0.1 + 0.2 * time_s, np.zeros_like(time_s), 0.05 * stance])
        _storage(tdir / "grf.mot", time_s,
                 ("ground_force_vx", "ground_force_vy", "ground_force_vz", "ground_force_px",
                  "ground_force_py", "ground_force_pz"), grf)
        for j, method in enumerate(methods):
            ex = base / "calibration" / method / "execution" / trial
            predicted = moments * (0.95 - 0.05 * j) + rng.normal(0, 0.5, moments.shape)
            _storage(ex / "moments.sto", time_s, DOFS, predicted)
            act = np.clip(np.nan_to_num(exc, nan=0.2) * 0.9, 0, 1)
            _storage(ex / "activations.sto", time_s, MTUS, act)
            _storage(ex / "forces.sto", time_s, MTUS, 800 * act)
            _storage(ex / "fiber_lengths.sto", time_s, MTUS,
                     0.1 * (0.9 + 0.3 * act + 0.05 * np.arange(len(MTUS))[:, None]))
            if trial in {t for t, r in TRIALS.items() if r == "validation"}:
                per_dof = {}
                for d, dof in enumerate(DOFS):
                    err = predicted[d] - moments[d]
                    ss = np.sum((moments[d] - moments[d].mean()) ** 2)
                    per_dof[dof] = {"rmse_nm": float(np.sqrt(np.mean(err ** 2))),
                                    "r2": float(1 - np.sum(err ** 2) / ss)}
                metrics_by_method[method]["trials"][trial] = per_dof
    for j, method in enumerate(methods):
        folder = base / "calibration" / method
        per_trial = metrics_by_method[method]["trials"]
        values = [m for t in per_trial.values() for m in t.values()]
        metrics = {**metrics_by_method[method],
                   "mean_rmse_nm": float(np.mean([v["rmse_nm"] for v in values])),
                   "mean_r2": float(np.mean([v["r2"] for v in values]))}
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (folder / "parameters.json").write_text(json.dumps(
            _parameters(method, rng, wall_s=3.0 + 40.0 * j), indent=2))
        n = 120 if method == "gradient" else 400
        loss = 10.0 * np.exp(-np.arange(n) / (20.0 + 30 * j)) + 0.05
        elapsed = np.arange(n) * (0.025 if method == "gradient" else 0.1)
        lines = ["iteration\tloss\ttracking\tpenalty\telapsed_s"]
        lines += [f"{i}\t{v:.6g}\t{0.9 * v:.6g}\t{0.1 * v:.6g}\t{e:.4f}"
                  for i, (v, e) in enumerate(zip(loss, elapsed, strict=True))]
        (folder / "history.tsv").write_text("\n".join(lines) + "\n")
        (folder / "calibrated.osim").write_text("<OpenSimDocument/>\n")


def _parameters(method: str, rng: np.random.Generator, *, wall_s: float) -> dict:
    mtus = {}
    for i, mtu in enumerate(MTUS):
        entry = {}
        for name, (initial, lo, hi) in PARAMS.items():
            initial = initial * (1 + 0.1 * i) if name.endswith(("_m", "_n")) else initial
            lower, upper = ABS_BOUNDS.get(name, (initial * (lo or 1), initial * (hi or 1)))
            value = float(np.clip(initial + rng.normal(0, 0.3) * (upper - lower) / 2,
                                  lower, upper))
            entry[name] = {"value": value, "initial": initial, "lower": lower, "upper": upper,
                           "at_bound": bool(value in (lower, upper)),
                           "se": abs(float(rng.normal(0, 0.05))) * (upper - lower)}
        mtus[mtu] = entry
    return {"method": method, "tendon": "elastic", "mtus": mtus,
            "identifiability": {"flags": ["c1/delt_med", "c2/delt_med"],
                                "correlated_pairs": [{"a": "c1/delt_med", "b": "c2/delt_med",
                                                      "correlation": 0.97}]},
            "provenance": {"package_version": "0.1.0", "config_sha256": "0" * 64, "seed": 0},
            "wall_s": wall_s, "iterations": 120 if method == "gradient" else 400}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
