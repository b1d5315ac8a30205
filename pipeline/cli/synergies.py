"""Subcommands ``calibrate-synergy`` and ``experiment channel-removal`` (paper 002, III-C/D).

``calibrate-synergy`` runs synergy-hybrid calibration and its validation in one step (validation
needs the calibrated weightings) and writes ``parameters.json``, ``metrics.json``,
``calibrated.osim``, ``history.tsv``, ``synergies.png`` and ``execution/<trial>/*.sto`` (with
``synthesised_excitations.sto``) into ``--out-dir``; see :mod:`pipeline.synergies.run`.

``experiment channel-removal`` compares EMG-driven and synergy-hybrid calibration as recorded
channels are removed (Fig. 5) and writes ``channel_removal.tsv``, ``channel_ranking.tsv`` and
``channel_removal.png``; see :mod:`pipeline.synergies.channel_removal`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pipeline._gc import lasting_imports
from pipeline.cli._common import add_command
from pipeline.errors import ConfigError, describe
from pipeline.fileio import write_text_atomic

log = logging.getLogger(__name__)


def _config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(merged config, model setup)`` of ``--study``/``--subject``, else the defaults."""
    from pipeline import resources
    from pipeline.study import MODEL_SETUP_DEFAULTS, load_study, read_yaml

    if args.study is None:
        return read_yaml(resources.default_config()), dict(MODEL_SETUP_DEFAULTS)
    if args.subject is None:
        raise ConfigError(describe(None, "--study was given without --subject",
                                   "pass --subject <name from subjects.tsv>"))
    study = load_study(args.study, check_files=False)
    return study.config, study.model_setup(args.subject)


def _calibration_overrides(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    config = dict(config)
    calibration = dict(config.get("calibration", {}))
    if getattr(args, "tendon", None):
        calibration["tendon"] = args.tendon
    if getattr(args, "max_iterations", None) is not None:
        calibration["optimiser"] = {**calibration.get("optimiser", {}),
                                    "max_iterations": args.max_iterations}
    config["calibration"] = calibration
    return config


def _calibrate_synergy(args: argparse.Namespace) -> int:
    with lasting_imports():
        import torch

        from pipeline.synergies.run import read_truth_trials, run_synergy_hybrid

    torch.set_num_threads(max(1, args.threads))
    config, setup = _config(args)
    config = _calibration_overrides(config, args)
    truth = args.truth
    if truth is None and args.study is not None and (Path(args.study) / "truth.json").exists():
        truth = Path(args.study) / "truth.json"
    truth_trials = read_truth_trials(truth, args.subject) if truth else None
    unrecorded = list(setup.get("unrecorded", []) or [])
    if args.unrecorded is not None:
        unrecorded = list(args.unrecorded)
    run_synergy_hybrid(inputs=args.inputs, validation_inputs=args.validation_inputs,
                       out_dir=args.out_dir, config=config, unrecorded=unrecorded,
                       scaled_osim=args.model, truth_trials=truth_trials, seed=args.seed,
                       subject=args.subject, max_iterations=args.max_iterations,
                       progress=not args.no_progress)
    return 0


def _channel_removal(args: argparse.Namespace) -> int:
    with lasting_imports():
        import torch

        from pipeline.calibrate.gradient import GradientOptions
        from pipeline.calibrate.problem import TrialBatch, load_trials
        from pipeline.calibrate.run import make_objective
        from pipeline.synergies.channel_removal import plot_channel_removal, run_channel_removal
        from pipeline.synergies.hybrid import HybridOptions

    torch.set_num_threads(max(1, args.threads))
    config, _ = _config(args)
    config = _calibration_overrides(config, args)
    calibration = config["calibration"]
    seed = int(calibration.get("seed", 0) if args.seed is None else args.seed)
    p0 = None
    validation: TrialBatch | None
    if args.synthetic:
        from pipeline.calibrate.synthetic import perturbed_start
        from pipeline.synergies.synthetic import make_synergy_problem

        problem = make_synergy_problem(n_mtus=args.synthetic_mtus, seed=seed,
                                       tendon=calibration.get("tendon", "stiff")).problem
        spec, batch, validation = problem.spec, problem.calibration, problem.validation
        calibration = {**problem.config, "optimiser": calibration.get("optimiser", {})}
        p0 = perturbed_start(spec, problem.truth, rel_sd=0.1, seed=seed + 1)
    else:
        from pipeline.calibrate.export import read_muscle_properties
        from pipeline.calibrate.spec import build_spec

        if not args.inputs or args.model is None:
            raise ConfigError(describe(None, "channel-removal needs --inputs and --model (or "
                                       "--synthetic)", "pass the calibration trials' "
                                       "nms_inputs.npz files and the scaled .osim"))
        batch = load_trials(args.inputs)
        spec = build_spec(read_muscle_properties(args.model, batch.mtu_names), calibration)
        validation = (load_trials(args.validation_inputs, mtu_names=batch.mtu_names)
                      if args.validation_inputs else None)
    objective = make_objective(spec, batch, calibration)
    options = HybridOptions.from_config(config.get("synergies", {}), seed=seed)
    grad = GradientOptions.from_config(calibration.get("optimiser", {}), progress=False,
                                       log_every=0)
    result = run_channel_removal(objective, validation=validation, max_removed=args.max_removed,
                                 synergy_options=options, gradient_options=grad, p0=p0)
    out_dir = Path(args.out_dir)
    write_text_atomic(out_dir / "channel_removal.tsv",
                      result.table.to_csv(sep="\t", index=False, float_format="%.6g"))
    write_text_atomic(out_dir / "channel_ranking.tsv",
                      result.ranking.to_csv(sep="\t", index=False, float_format="%.6g"))
    plot_channel_removal(result.table, out_dir / "channel_removal.png")
    log.info("channel removal (order %s): wrote %s/{channel_removal.tsv,channel_ranking.tsv,"
             "channel_removal.png}", ", ".join(result.order), out_dir)
    return 0


def _missing(args: argparse.Namespace) -> int:
    args.experiment_parser.print_help()
    return 1


def _study_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--study", required=required, default=None,
                        help="study folder (config.yaml)" + ("" if required else
                                                             "; default: built-in defaults"))
    parser.add_argument("--subject", required=required, default=None,
                        help="subject name (subjects.tsv)")
    parser.add_argument("--out-dir", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=None, help="default calibration.seed")
    parser.add_argument("--tendon", choices=("stiff", "elastic"), default=None,
                        help="override calibration.tendon")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="override the AdamW iterations (synergies.adamw_iterations for "
                        "calibrate-synergy, calibration.optimiser.max_iterations otherwise)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for these small tensors)")


def register(subparsers: Any) -> None:
    parser = add_command(subparsers, "calibrate-synergy", _calibrate_synergy,
                         "synergy-hybrid calibration (paper 002, eq. 5) and its validation")
    _study_options(parser, required=True)
    parser.add_argument("--model", required=True, help="scaled .osim model")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="nms_inputs.npz files of the calibration trials")
    parser.add_argument("--validation-inputs", nargs="*", default=[],
                        help="nms_inputs.npz files of the validation trials (may be none)")
    parser.add_argument("--unrecorded", nargs="*", default=None,
                        help="override models.<model>.unrecorded (MTUs to synthesise)")
    parser.add_argument("--truth", default=None,
                        help="truth.json of a synthetic study (default <study>/truth.json when "
                        "present): report r of synthesised vs true excitations")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    group = add_command(subparsers, "experiment", _missing, "research experiments")
    group.set_defaults(experiment_parser=group)
    experiments = group.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    sub = add_command(experiments, "channel-removal", _channel_removal,
                      "EMG-driven vs synergy-hybrid calibration as EMG channels are removed "
                      "(paper 002, Fig. 5)")
    _study_options(sub, required=False)
    sub.add_argument("--inputs", nargs="*", default=[],
                     help="nms_inputs.npz files of the calibration trials")
    sub.add_argument("--validation-inputs", nargs="*", default=[],
                     help="nms_inputs.npz files of validation trials (optional)")
    sub.add_argument("--model", default=None, help="scaled .osim model")
    sub.add_argument("--max-removed", type=int, default=None,
                     help="remove at most this many channels (default: all but one)")
    sub.add_argument("--synthetic", action="store_true",
                     help="run on a synthetic problem with known synergies instead of --inputs")
    sub.add_argument("--synthetic-mtus", type=int, default=8,
                     help="MTUs of the synthetic problem")
