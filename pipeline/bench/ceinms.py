"""``bench ceinms``: the real CEINMS 0.9 against the project on the same real inputs.

Problems (NMS inputs from the Rajagopal walk, :mod:`pipeline.bench._ceinms_walk`; stiff tendon,
CEINMS 0.9's fast mode, on both sides, unless said):

* ``walk_1dof``: ankle; soleus, gastrocnemius medialis and lateralis, tibialis anterior;
  optimal fibre and tendon slack lengths per MTU, strength per group (soleus, gastrocnemii,
  tibialis anterior), one shared C1, C2 and shape factor: 14 parameters;
* ``walk_3dof``: hip flexion, knee, ankle; 11 MTUs with EMG; lengths and strength per MTU and
  the shared activation parameters: 36 parameters;
* ``walk_1dof_elastic``: ``walk_1dof`` with an elastic tendon (CEINMS's equilibrium-elastic
  tendon, the project's elastic tendon), without the activation-dependent optimal fibre length.

For each problem the bench writes CEINMS's inputs (start subject with the scaled model's values
and the project's curves, identity excitation generator, calibration XML with the same
parameters, sharing, bounds, tendon and the annealing settings of ``calibration.annealing``, one
trial folder), runs ``CEINMScalibrate`` and the project's own ``calibrate`` command (its default
method; ``calibration.objective: ceinms``) as whole processes, each ``--repeats`` times back to
back, and keeps the fastest run of each. Both solutions are then evaluated by the same code:
``common_loss`` is the CEINMS-compatible objective
(:mod:`pipeline.calibrate.ceinms_objective`) on the calibration window, ``validation_*`` the
held-out window's RMSE and R² of the same model. ``optimiser_s`` is CEINMS's printed
"Calibration time" (trial reading + annealing) and the project's ``wall_s`` in
``parameters.json`` (optimisation alone). CEINMS's evaluations are its temperature steps x
NS x NT x parameters + 1 (its annealing loop; it does not print a count). ``own_loss`` is the
loss each tool reports for its own solution (CEINMS: its last ``fOpt_``), beside ``common_loss``.

``--with-annealing`` also runs the project's own simulated annealing (``calibrate --method
annealing``, the baseline ``bench calibration`` compares against) on the same problem, and
reports its evaluations per second beside CEINMS's (``annealing_cost_ratio``: CEINMS's rate over
the project's, above 1 when the project's annealing is the slower per evaluation).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "ceinms"
HELP = "the real CEINMS 0.9 vs the project on the Rajagopal walk (time, evaluations, loss, R2)"

log = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PROBLEMS: dict[str, dict[str, Any]] = {
    "walk_1dof": {"dofs": ("ankle_angle_r",),
                  "mtus": ("soleus_r", "gasmed_r", "gaslat_r", "tibant_r"),
                  "groups": {"soleus": ["soleus_r"], "gastrocnemius": ["gasmed_r", "gaslat_r"],
                             "tibialis_anterior": ["tibant_r"]}},
    "walk_3dof": {"dofs": ("hip_flexion_r", "knee_angle_r", "ankle_angle_r"),
                  "mtus": ("soleus_r", "gasmed_r", "gaslat_r", "tibant_r", "semimem_r",
                           "semiten_r", "bflh_r", "vaslat_r", "vasmed_r", "recfem_r",
                           "glmax2_r"),
                  "groups": {}},
}
#: The same 1-DOF problem with CEINMS's equilibrium-elastic tendon and the project's elastic
#: tendon; no activation-dependent optimal fibre length on either side (percentageChange 0).
PROBLEMS["walk_1dof_elastic"] = {**PROBLEMS["walk_1dof"], "tendon": "elastic",
                                 "percentage_change": 0.0}
DEFAULT_PROBLEMS = ("walk_1dof", "walk_3dof")
#: Penalty band tolerance of the common loss: CEINMS writes its solution with 15 significant
#: digits and parks fibres on the penalty's edge (|l/l0 - 1| = 0.5), where the read-back value may
#: fall a few ulps outside and cost 25 / N_i; 1e-9 judges such a fibre as CEINMS did.
BAND_TOLERANCE = 1e-9
PARAMETERS = ["c1", "c2", "shape_factor", "optimal_fiber_length", "tendon_slack_length",
              "strength"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="shared data folder holding opensim-core/rajagopal-walk")
    parser.add_argument("--ceinms-source", default=None,
                        help="CEINMS 0.9 source folder (default ../shared/peers/ceinms-0.9)")
    parser.add_argument("--cache-dir", default=None,
                        help="where CEINMS is built and kept (default ~/.cache/pipeline/"
                             "ceinms-0.9, or $PIPELINE_CACHE_DIR/ceinms-0.9)")
    parser.add_argument("--work-dir", default=None,
                        help="where the inputs and runs are written (default: a folder beside "
                             "the JSON file)")
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS),
                        default=list(DEFAULT_PROBLEMS),
                        help="default: the stiff-tendon problems (CEINMS's elastic calibration "
                             "of walk_1dof_elastic takes many minutes per run)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each tool, back to back; the fastest is reported")
    parser.add_argument("--max-evaluations", type=int, default=None,
                        help="annealing evaluation cap for CEINMS (default "
                             "calibration.annealing.max_evaluations)")
    parser.add_argument("--pipeline-objective", choices=("ceinms", "default"), default="ceinms",
                        help="the loss the project minimises (both are judged by the common, "
                             "CEINMS-compatible loss); default ceinms, the same as CEINMS's")
    parser.add_argument("--with-annealing", action="store_true",
                        help="also run the project's own simulated annealing (the baseline of "
                             "bench calibration) on the same problems, and compare its cost per "
                             "evaluation with CEINMS's")
    parser.add_argument("--inputs-only", action="store_true",
                        help="write both tools' inputs and stop (no build, no runs)")


def calibration_config(problem: dict[str, Any], max_evaluations: int | None = None) -> dict:
    """The project's default ``calibration:`` with the bench's choices."""
    from pipeline.resources import default_config
    from pipeline.study import read_yaml

    cfg = read_yaml(default_config())["calibration"]
    cfg.update({"tendon": problem.get("tendon", "stiff"), "objective": "ceinms", "emd_s": 0.0,
                "parameters": PARAMETERS, "groups": problem["groups"],
                "activation_sharing": "global", "prior_weight": 0.0})
    if "percentage_change" in problem:
        cfg["ceinms_percentage_change"] = problem["percentage_change"]
    cfg["initial"] = {**cfg.get("initial", {}), "damping": 0.01}
    if max_evaluations is not None:
        cfg["annealing"] = {**cfg["annealing"], "max_evaluations": int(max_evaluations)}
    return cfg


def write_problem(folder: Path, name: str, walk, cfg: dict) -> dict[str, Any]:
    """Write the project's NMS inputs and study, and CEINMS's inputs, for one problem."""
    import yaml

    from pipeline.bench._ceinms_walk import EXCITATIONS, subset
    from pipeline.calibrate.export import read_muscle_properties
    from pipeline.calibrate.problem import batch_trials
    from pipeline.calibrate.spec import build_spec
    from pipeline.fileio import write_text_atomic
    from pipeline.interop.ceinms_params import dofs_from_batch, subject_from_values
    from pipeline.interop.ceinms_setup import calibration_setup_xml, calibration_xml, write_trial
    from pipeline.interop.ceinms_subject import (
        excitation_generator,
        write_excitation_generator,
        write_subject,
    )
    from pipeline.io.nms_inputs import write_nms_trial

    problem = PROBLEMS[name]
    mtus, dofs = problem["mtus"], problem["dofs"]
    trials = {role: subset(t, mtus, dofs) for role, t in walk.trials.items()}
    paths = {}
    for role, trial in trials.items():
        paths[role] = folder / "pipeline" / role / "nms_inputs.npz"
        paths[role].parent.mkdir(parents=True, exist_ok=True)
        write_nms_trial(paths[role], trial)
    batch = batch_trials([trials["calibration"]], [str(paths["calibration"])])
    muscles = read_muscle_properties(walk.model_path, mtus)
    spec = build_spec(muscles, cfg)
    # the project's study: config and sheets (the C3D file is never read by `calibrate`)
    study = folder / "pipeline" / "study"
    study.mkdir(parents=True, exist_ok=True)
    emg_names = sorted({e for m in mtus for e in EXCITATIONS[m]})
    config = {"models": {"rajagopal": {"emg_channels": {n: n for n in emg_names},
                                       "excitations": {m: EXCITATIONS[m] for m in mtus},
                                       "dofs": list(dofs), "force_plates": True}},
              "calibration": cfg}
    write_text_atomic(study / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_text_atomic(study / "subjects.tsv", "subject\tmass_kg\theight_m\tmodel\n"
                      "walk\t72.0\t1.80\trajagopal\n")
    write_text_atomic(study / "trials.tsv", "subject\ttrial\tfile\tkind\trole\n"
                      "walk\tstatic\tstatic.c3d\tstatic\tnone\n"
                      "walk\twalk\twalk.c3d\tdynamic\tcalibration\n")
    # CEINMS
    ceinms = folder / "ceinms"
    start = subject_from_values(muscles, spec.per_mtu(spec.initial), dofs_from_batch(batch),
                                em_delay_s=cfg["emd_s"],
                                percentage_change=cfg["ceinms_percentage_change"],
                                default_damping=cfg["initial"]["damping"])
    write_subject(ceinms / "subject.xml", start)
    write_excitation_generator(ceinms / "excitationGenerator.xml",
                               excitation_generator({m: {m: 1.0} for m in mtus}, mtu_names=mtus))
    trial_xml = write_trial(ceinms / "walk", trials["calibration"],
                            excitation_time_s=walk.warmup_time_s["calibration"],
                            excitation=subset_excitation(walk, "calibration", mtus))
    write_text_atomic(ceinms / "calibration.xml", calibration_xml(
        spec, cfg, dofs=dofs, trial_files=[str(trial_xml.relative_to(ceinms))]))
    write_text_atomic(ceinms / "calibrationSetup.xml", calibration_setup_xml(
        subject_file="subject.xml", excitation_generator_file="excitationGenerator.xml",
        calibration_file="calibration.xml", output_subject_file="calibratedSubject.xml"))
    return {"spec": spec, "paths": paths, "study": study, "ceinms": ceinms,
            "model": walk.model_path, "trials": trials}


def subset_excitation(walk, role: str, mtus: tuple[str, ...]) -> np.ndarray:
    names = walk.trials[role].mtu_names
    return walk.warmup_excitation[role][[names.index(m) for m in mtus]]


def run_pipeline(written: dict[str, Any], method: str, out_dir: Path) -> dict[str, Any]:
    """The project's ``calibrate`` command as a whole process; its timings and counts."""
    from pipeline.calibrate.export import read_parameters

    command = [sys.executable, "-m", "pipeline", "calibrate", "--study", str(written["study"]),
               "--subject", "walk", "--method", method, "--out-dir", str(out_dir),
               "--model", str(written["model"]), "--inputs",
               str(written["paths"]["calibration"]), "--no-progress"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                p for p in (str(Path(__file__).resolve().parents[2]),
                                            os.environ.get("PYTHONPATH")) if p)})
    wall_s = time.perf_counter() - started
    if result.returncode != 0:
        from pipeline.errors import CalibrationError, describe

        raise CalibrationError(describe(written["study"], "the project's calibrate command "
                                        f"failed: {result.stderr.strip()[-1500:]}",
                                        "run the printed command by hand to see why"))
    document = read_parameters(out_dir / "parameters.json")
    evaluations = document.get("evaluations")
    if evaluations is None:
        evaluations = int(document.get("iterations", 0)) + int(
            document.get("polish_evaluations", 0))
    return {"wall_s": wall_s, "optimiser_s": float(document["wall_s"]),
            "evaluations": int(evaluations), "document": document}


def evaluate(params, written: dict[str, Any], cfg: dict) -> dict[str, float]:
    """Common loss on the calibration window, RMSE/R² on the held-out one (same code for both)."""
    import torch

    from pipeline.calibrate.ceinms_objective import CeinmsObjective
    from pipeline.calibrate.execute import batch_metrics, execute
    from pipeline.calibrate.problem import batch_trials

    out = {}
    objective_doc = {"name": "ceinms", "percentage_change": cfg["ceinms_percentage_change"]}
    for role, trial in written["trials"].items():
        batch = batch_trials([trial], [role])
        with torch.no_grad():
            output = execute(params, batch, tendon=cfg["tendon"], emd_s=cfg["emd_s"],
                             objective=objective_doc)
        if role == "calibration":
            objective = CeinmsObjective(written["spec"], batch, tendon=cfg["tendon"],
                                        emd_s=cfg["emd_s"],
                                        percentage_change=cfg["ceinms_percentage_change"],
                                        band_tolerance=BAND_TOLERANCE)
            terms = objective.terms_from_output(output)
            out["common_loss"] = float(terms.total)
            out["common_penalty"] = float(terms.penalty)
            out["calibration_r2"] = batch_metrics(batch, output)["mean_r2"]
        else:
            metrics = batch_metrics(batch, output)
            out["validation_rmse_nm"] = metrics["mean_rmse_nm"]
            out["validation_r2"] = metrics["mean_r2"]
    return out


def run_problem(name: str, walk, args: argparse.Namespace, folder: Path,
                binary: Path | None) -> dict[str, Any]:
    from pipeline.bench._ceinms_peer import run_calibrate
    from pipeline.calibrate.execute import muscle_parameters_from_document
    from pipeline.interop.ceinms_params import muscle_parameters
    from pipeline.interop.ceinms_subject import read_subject

    cfg = calibration_config(PROBLEMS[name], args.max_evaluations)
    written = write_problem(folder, name, walk, cfg)
    if getattr(args, "pipeline_objective", "ceinms") != "ceinms":
        import yaml

        from pipeline.fileio import write_text_atomic
        from pipeline.study import read_yaml

        study_config = read_yaml(written["study"] / "config.yaml")
        study_config["calibration"]["objective"] = args.pipeline_objective
        write_text_atomic(written["study"] / "config.yaml",
                          yaml.safe_dump(study_config, sort_keys=False))
    spec = written["spec"]
    entry: dict[str, Any] = {"name": name, "n_dofs": len(PROBLEMS[name]["dofs"]),
                             "n_mtus": len(PROBLEMS[name]["mtus"]),
                             "n_parameters": spec.n_free, "tendon": cfg["tendon"],
                             "n_calibration_samples": len(written["trials"]["calibration"].time_s),
                             "n_validation_samples": len(written["trials"]["validation"].time_s)}
    if binary is None:
        return entry
    method = cfg.get("methods", ["gradient"])[0]
    annealing = cfg["annealing"]
    runs = []
    for _ in range(args.repeats):
        runs.append(run_calibrate(binary, written["ceinms"] / "calibrationSetup.xml",
                                  written["ceinms"] / "calibratedSubject.xml"))
        log.info("%s: CEINMS %.2f s (calibration %.2f s, %d temperatures)", name,
                 runs[-1].wall_s, runs[-1].optimiser_s, runs[-1].temperatures)
    best = min(runs, key=lambda r: r.wall_s)
    calibrated = read_subject(best.output_subject)
    entry["ceinms"] = {
        "wall_s": best.wall_s, "optimiser_s": min(r.optimiser_s for r in runs),
        "evaluations": best.temperatures * int(annealing["ns"]) * int(annealing["nt"])
        * spec.n_free + 1,
        "wall_s_runs": [r.wall_s for r in runs], "own_loss": best.own_loss,
        **evaluate(muscle_parameters(calibrated, spec.mtu_names), written, cfg)}
    ours = []
    for k in range(args.repeats):
        ours.append(run_pipeline(written, method, folder / "pipeline" / f"run{k}"))
        log.info("%s: pipeline %.2f s (optimiser %.2f s, %d evaluations)", name,
                 ours[-1]["wall_s"], ours[-1]["optimiser_s"], ours[-1]["evaluations"])
    best_ours = min(ours, key=lambda r: r["wall_s"])
    params = muscle_parameters_from_document(best_ours["document"], spec.mtu_names)
    entry["pipeline"] = {
        "method": method, "wall_s": best_ours["wall_s"],
        "optimiser_s": min(r["optimiser_s"] for r in ours),
        "evaluations": best_ours["evaluations"], "wall_s_runs": [r["wall_s"] for r in ours],
        "own_loss": float(best_ours["document"]["loss"]["total"]),
        **evaluate(params, written, cfg)}
    entry["ceinms"]["evaluations_per_s"] = (entry["ceinms"]["evaluations"]
                                            / entry["ceinms"]["optimiser_s"])
    if getattr(args, "with_annealing", False):
        annealed = []
        for k in range(args.repeats):
            annealed.append(run_pipeline(written, "annealing",
                                         folder / "pipeline" / f"annealing{k}"))
            log.info("%s: project's annealing %.2f s (optimiser %.2f s, %d evaluations)", name,
                     annealed[-1]["wall_s"], annealed[-1]["optimiser_s"],
                     annealed[-1]["evaluations"])
        fastest = min(annealed, key=lambda r: r["optimiser_s"])
        entry["annealing"] = {
            "wall_s": min(r["wall_s"] for r in annealed), "optimiser_s": fastest["optimiser_s"],
            "evaluations": fastest["evaluations"],
            "evaluations_per_s": fastest["evaluations"] / fastest["optimiser_s"],
            "optimiser_s_runs": [r["optimiser_s"] for r in annealed],
            "own_loss": float(fastest["document"]["loss"]["total"]),
            **evaluate(muscle_parameters_from_document(fastest["document"], spec.mtu_names),
                       written, cfg)}
        # > 1: the project's annealing pays more per evaluation than CEINMS's
        entry["annealing_cost_ratio"] = (entry["ceinms"]["evaluations_per_s"]
                                         / entry["annealing"]["evaluations_per_s"])
    entry["speedup"] = entry["ceinms"]["wall_s"] / entry["pipeline"]["wall_s"]
    entry["optimiser_speedup"] = entry["ceinms"]["optimiser_s"] / entry["pipeline"]["optimiser_s"]
    entry["settings"] = {"pipeline_objective": getattr(args, "pipeline_objective", "ceinms"),
                         "annealing": annealing, "rate_hz": 200.0, "emd_s": cfg["emd_s"],
                         "start": "scaled model values, c1 = c2 = -0.5, A = -1, strength 1"}
    return entry


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.bench._ceinms_peer import DEFAULT_SOURCE, ensure_built
    from pipeline.bench._ceinms_walk import build_walk_inputs

    work = Path(args.work_dir) if args.work_dir else Path(args.json).resolve().parent / (
        Path(args.json).stem + "_work")
    work.mkdir(parents=True, exist_ok=True)
    binary = None
    if not args.inputs_only:
        binary = ensure_built(args.ceinms_source or DEFAULT_SOURCE, args.cache_dir)
    walk = build_walk_inputs(args.data)
    load_before = list(os.getloadavg())
    problems = [run_problem(name, walk, args, work / name, binary) for name in args.problems]
    return {"load_average": list(os.getloadavg()), "load_average_at_start": load_before,
            "cpu_count": os.cpu_count(), "repeats": args.repeats, "work_dir": str(work),
            "problems": problems}
