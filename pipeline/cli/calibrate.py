"""Subcommands ``calibrate`` and ``execute``.

``calibrate`` writes ``parameters.json``, ``calibrated.osim`` and ``history.tsv`` into
``--out-dir``; ``execute`` runs the calibrated model open-loop on the validation trials and writes
``metrics.json`` and ``execution/<trial>/{moments,forces,activations,fiber_lengths}.sto``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from pipeline._gc import lasting_imports
from pipeline.cli._common import add_command
from pipeline.errors import ConfigError, describe
from pipeline.fileio import write_json_atomic, write_text_atomic
from pipeline.provenance import study_provenance

log = logging.getLogger(__name__)


def _trial_labels(paths: list[str]) -> list[str]:
    from pipeline.calibrate.execute import trial_label

    labels = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta_json"]))
        except (OSError, KeyError, ValueError):
            meta = {}
        labels.append(trial_label(path, meta))
    return labels


def _study_config(args: argparse.Namespace) -> dict:
    return _subject_study(args).config


def _subject_study(args: argparse.Namespace):  # noqa: ANN202 (pipeline.study.Study)
    from pipeline.study import load_study

    study = load_study(args.study, check_files=False)
    study.subject(args.subject)
    return study


def _tracked(setup: dict, batch_dofs: tuple[str, ...], source: str) -> list[str]:
    """The DOFs whose ID moments the calibration tracks (``models.<model>.tracked_dofs``)."""
    from pipeline.errors import CalibrationError

    tracked = list(setup.get("tracked_dofs") or batch_dofs)
    missing = [d for d in tracked if d not in batch_dofs]
    if missing:
        raise CalibrationError(describe(source, f"tracked DOFs {missing} are not in the NMS "
                                        f"inputs (DOFs {list(batch_dofs)})",
                                        "list them under models.<model>.dofs and rerun collect"))
    return tracked


def _initial_values(path: str | None, mtu_names: tuple[str, ...]) -> dict | None:
    from pipeline.calibrate.initial_values import read_initial_values, select

    if not path:
        return None
    return select(read_initial_values(path), mtu_names, source=path)


def _write_method_outputs(args: argparse.Namespace, document: dict, history: list, *,
                          bodies: dict | None = None) -> None:
    """``history.tsv``, ``calibrated.osim`` (the document's MTU values; ``bodies``: new
    inertial properties) and ``parameters.json`` of one method, in ``--out-dir``."""
    from pipeline.calibrate.export import write_calibrated_osim, write_parameters
    from pipeline.calibrate.gradient import history_tsv

    out_dir = Path(args.out_dir)
    write_text_atomic(out_dir / "history.tsv", history_tsv(history))
    per_mtu = {name: {k: entry[k]["value"] for k in ("optimal_fiber_length_m",
                                                     "tendon_slack_length_m",
                                                     "max_isometric_force_n")}
               for name, entry in document["mtus"].items()}
    write_calibrated_osim(args.model, out_dir / "calibrated.osim", per_mtu, bodies=bodies)
    write_parameters(out_dir / "parameters.json", document)
    log.info("wrote %s/{parameters.json,calibrated.osim,history.tsv}", out_dir)


def _calibrate(args: argparse.Namespace) -> int:
    with lasting_imports():
        import torch

        from pipeline.calibrate.annealing import AnnealingOptions
        from pipeline.calibrate.execute import batch_metrics
        from pipeline.calibrate.export import provenance, read_muscle_properties
        from pipeline.calibrate.gradient import GradientOptions
        from pipeline.calibrate.problem import load_trials
        from pipeline.calibrate.run import calibrate, report_outcome
        from pipeline.calibrate.spec import build_spec

    torch.set_num_threads(max(1, args.threads))
    study = _subject_study(args)
    config = study.config
    setup = study.model_setup(args.subject)
    cfg = dict(config["calibration"])
    if args.tendon:
        cfg["tendon"] = args.tendon
    seed = int(cfg.get("seed", 0) if args.seed is None else args.seed)
    batch = load_trials(args.inputs)
    # Model more than you calibrate: every MTU and DOF is modelled; only the tracked DOFs enter
    # the objective, only the calibrated MTUs' parameters move.
    tracked = _tracked(setup, batch.dof_names, args.inputs[0])
    fit_batch = batch if tracked == list(batch.dof_names) else batch.select_dofs(tracked)
    chosen = setup.get("calibrated_mtus")
    calibrated = None if chosen is None else set(chosen)
    if args.ceinms_subject:
        from pipeline.interop.ceinms_params import apply_subject_values, muscle_properties
        from pipeline.interop.ceinms_subject import read_subject

        subject = read_subject(args.ceinms_subject)
        source = str(args.ceinms_subject)
        spec = apply_subject_values(
            build_spec(muscle_properties(subject, batch.mtu_names, source=source), cfg,
                       calibrated_mtus=calibrated),
            subject, cfg, source=source)
        log.info("starting from the per-muscle values of CEINMS subject %s", source)
    else:
        muscles = read_muscle_properties(args.model, batch.mtu_names)
        spec = build_spec(muscles, cfg, calibrated_mtus=calibrated,
                          initial_values=_initial_values(args.initial_parameters,
                                                         batch.mtu_names))
    if args.method == "motion":
        return _calibrate_motion(args, study, spec, batch, fit_batch, tracked, cfg, seed)
    gradient_options = annealing_options = None
    if args.method == "gradient":
        overrides = {} if args.max_iterations is None else {"max_iterations": args.max_iterations,
                                                            "max_evaluations": args.max_iterations}
        gradient_options = GradientOptions.from_config(
            {**cfg.get("optimiser", {}), **overrides}, progress=not args.no_progress)
    else:
        overrides = ({} if args.max_evaluations is None
                     else {"max_evaluations": args.max_evaluations})
        annealing_options = AnnealingOptions.from_config({**cfg.get("annealing", {}), **overrides})
    outcome = calibrate(spec, fit_batch, cfg, method=args.method, seed=seed,
                        gradient_options=gradient_options, annealing_options=annealing_options,
                        progress=not args.no_progress)
    labels = _trial_labels(args.inputs)
    with torch.no_grad():
        # Every DOF, tracked or not, on the objective's device.
        output = outcome.objective.simulate(torch.as_tensor(outcome.p, dtype=torch.float64),
                                            batch.to(outcome.objective.device))
        output = type(output)(*(x.cpu() for x in output))  # from calibration.device
    document = outcome.document(
        provenance=provenance(config, seed=seed, inputs=[args.model, *args.inputs]),
        subject=args.subject, dof_names=list(batch.dof_names), tracked_dofs=tracked,
        calibration_trials=labels, calibration_fit=batch_metrics(batch, output, labels,
                                                                 mean_over=tracked))
    report_outcome(outcome, document)
    _write_method_outputs(args, document, outcome.history)
    return 0


def _calibrate_motion(args: argparse.Namespace, study, spec, batch, fit_batch,  # noqa: ANN001
                      tracked: list[str], cfg: dict, seed: int) -> int:
    """Method motion: muscle and inertial parameters by equation error on the trials' motion."""
    import torch

    from pipeline.calibrate.execute import batch_metrics
    from pipeline.calibrate.export import parameters_document, provenance
    from pipeline.calibrate.run import analyse_identifiability
    from pipeline.dynamics.build import load_skeleton
    from pipeline.dynamics.motion_method import (
        bodies_document,
        body_properties,
        calibrate_motion,
        motion_document,
        motion_trials,
        trial_loads,
    )
    from pipeline.errors import CalibrationError

    if not args.ik or len(args.ik) != len(args.inputs):
        raise CalibrationError(describe(args.inputs[0], "method motion needs one --ik motion per "
                                        "calibration trial", "pass each trial's ik.mot"))
    config = study.config
    setup = study.model_setup(args.subject)
    skeleton = load_skeleton(args.model)
    motion = motion_trials(skeleton, fit_batch, args.ik,
                           trial_loads(args.external_loads or [], args.grf or [],
                                       fit_batch.n_trials),
                           cutoff_hz=config.get("opensim", {}).get("id", {}).get("cutoff_hz"))
    mass = study.subject(args.subject).get("mass_kg")
    outcome = calibrate_motion(spec, fit_batch, cfg, skeleton, motion,
                               known_bodies=setup.get("known_bodies") or (),
                               body_mass_kg=None if mass in (None, "") else float(mass),
                               source=f"subject {args.subject}")
    ident = analyse_identifiability(outcome.objective, outcome.p, cfg)
    labels = _trial_labels(args.inputs)
    with torch.no_grad():
        output = outcome.objective.simulate(torch.as_tensor(outcome.p, dtype=torch.float64),
                                            batch)
    u = outcome.uncertainty
    document = parameters_document(
        spec, outcome.p, method="motion", tendon=outcome.objective.tendon,
        standard_errors=u.muscle_se, identifiability=ident.to_json(),
        provenance=provenance(config, seed=seed, inputs=[args.model, *args.inputs, *args.ik]),
        emd_s=outcome.objective.emd_s,
        loss={"total": outcome.loss, "tracking": outcome.tracking, "penalty": outcome.penalty},
        wall_s=outcome.wall_s, iterations=outcome.evaluations, optimiser="least_squares",
        converged=outcome.stopped != "max_evaluations", stopped=outcome.stopped,
        objective={"name": "equation_error"}, bodies=bodies_document(outcome),
        motion=motion_document(outcome), subject=args.subject, dof_names=list(batch.dof_names),
        tracked_dofs=tracked, calibration_trials=labels,
        calibration_fit=batch_metrics(batch, output, labels, mean_over=tracked))
    log.info("motion calibration: loss %.6g (equation error %.6g, penalty %.3g), %d "
             "evaluations, %.2f s", outcome.loss, outcome.tracking, outcome.penalty,
             outcome.evaluations, outcome.wall_s)
    _write_method_outputs(args, document, outcome.history, bodies=body_properties(outcome))
    return 0


def _execute(args: argparse.Namespace) -> int:
    with lasting_imports():
        import torch

        from pipeline.calibrate.execute import batch_metrics, execute_document, write_execution
        from pipeline.calibrate.export import read_parameters
        from pipeline.calibrate.generalisation import generalisation_block
        from pipeline.calibrate.problem import load_trials

    torch.set_num_threads(max(1, args.threads))
    config = _study_config(args)
    document = read_parameters(args.parameters)
    out_dir = Path(args.out_dir)
    label = f"subject {args.subject}, method {args.method}"
    metrics: dict = {"method": args.method, "subject": args.subject,
                     "tendon": document.get("tendon"), "parameters": str(args.parameters),
                     "calibration": document.get("calibration_fit", {}),
                     "provenance": study_provenance(config, [args.parameters, *args.inputs])}
    if document.get("method") not in (None, args.method):
        raise ConfigError(describe(args.parameters, f"holds {document['method']} parameters, not "
                                   f"{args.method}", "pass the matching --method"))
    # The calibration trials' model outputs, for the figures (which read results and never run
    # the model); metrics.json keeps the calibration fit that calibrate computed.
    if args.calibration_inputs:
        fitted = load_trials(args.calibration_inputs, mtu_names=list(document["mtus"]))
        write_execution(out_dir / "execution", fitted,
                        execute_document(document, fitted, source=args.parameters),
                        _trial_labels(args.calibration_inputs))
    if not args.inputs:
        log.warning("subject %s has no validation trials: no execution metrics. Set role "
                    "validation on some dynamic trials in trials.tsv to validate the "
                    "calibration", args.subject)
        metrics.update({"n_validation_trials": 0, "trials": {}, "mean_rmse_nm": None,
                        "mean_r2": None, "warning": "no validation trials",
                        "generalisation": generalisation_block(
                            metrics["calibration"], None, label=label,
                            dofs=document.get("tracked_dofs") or document.get("dof_names"))})
        (out_dir / "execution").mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "metrics.json", metrics)
        return 0
    batch = load_trials(args.inputs, mtu_names=list(document["mtus"]))
    from pipeline.calibrate.run import resolve_device

    output = execute_document(document, batch, source=args.parameters,
                              device=resolve_device(config.get("calibration", {})))
    labels = _trial_labels(args.inputs)
    write_execution(out_dir / "execution", batch, output, labels)
    tracked = document.get("tracked_dofs") or list(batch.dof_names)
    validation = batch_metrics(batch, output, labels, mean_over=tracked)
    metrics.update({"n_validation_trials": len(labels), **validation,
                    "dof_names": list(batch.dof_names), "tracked_dofs": tracked,
                    "generalisation": generalisation_block(
                        metrics["calibration"], validation, dofs=tracked, label=label,
                        hint=MOTION_HINT if args.method == "motion" else "")})
    write_json_atomic(out_dir / "metrics.json", metrics)
    log.info("validation: mean RMSE %.4g N*m, mean R2 %.4g over %d trial(s)",
             validation["mean_rmse_nm"], validation["mean_r2"] or float("nan"), len(labels))
    return 0


MOTION_HINT = ("the motion method also estimates the segments' inertial parameters: "
               "calibration.motion.inertia_prior_weight pulls them towards the scaled model")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="study folder (config.yaml)")
    parser.add_argument("--subject", required=True, help="subject name (subjects.tsv)")
    parser.add_argument("--method", required=True, choices=("gradient", "annealing", "motion"))
    parser.add_argument("--out-dir", required=True, help="results/<subject>/calibration/<method>")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for these small tensors)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "calibrate", _calibrate,
                         "calibrate the EMG-driven NMS model on calibration trials")
    _common(parser)
    parser.add_argument("--model", required=True, help="scaled .osim model")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="nms_inputs.npz files of the calibration trials")
    parser.add_argument("--seed", type=int, default=None, help="default calibration.seed")
    parser.add_argument("--initial-parameters", default=None,
                        help="per-MTU initial values (.csv, .json; subjects.tsv column "
                             "initial_parameters)")
    parser.add_argument("--tendon", choices=("stiff", "elastic"), default=None,
                        help="override calibration.tendon")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="override calibration.optimiser.max_iterations (adamw) and "
                             "max_evaluations (least_squares)")
    parser.add_argument("--max-evaluations", type=int, default=None,
                        help="override calibration.annealing.max_evaluations")
    parser.add_argument("--ceinms-subject", default=None,
                        help="start from this CEINMS subject XML's per-muscle values (fibre and "
                             "tendon slack lengths, forces, activation parameters, strengths); "
                             "relative bounds are taken relative to them")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--ik", nargs="+", default=None,
                        help="method motion: ik.mot of each calibration trial (same order)")
    parser.add_argument("--external-loads", nargs="+", default=None,
                        help="method motion: ExternalLoads XML of each trial (none: no loads)")
    parser.add_argument("--grf", nargs="+", default=None,
                        help="method motion: the GRF .mot each ExternalLoads reads (none: none)")
    parser = add_command(subparsers, "execute", _execute,
                         "run the calibrated model on validation (metrics.json) and calibration "
                         "trials; write each trial's model outputs under execution/")
    _common(parser)
    parser.add_argument("--parameters", required=True, help="parameters.json from calibrate")
    parser.add_argument("--inputs", nargs="*", default=[],
                        help="nms_inputs.npz files of the validation trials (may be none)")
    parser.add_argument("--calibration-inputs", nargs="*", default=[],
                        help="nms_inputs.npz files of the calibration trials (model outputs "
                             "only: the figures plot them)")
