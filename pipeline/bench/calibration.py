"""``bench calibration``: gradient calibration vs the simulated-annealing baseline.

Builds the synthetic reference problems the size of paper 002's models (upper limb: 16 MTUs,
3 DOFs; lower limb: 14 MTUs, 3 DOFs; 3 calibration trials of 500 samples and 3 validation trials,
elastic tendon), whose "scaled model" has 10 % errors in the optimal fibre and tendon slack lengths
and CEINMS-default activation parameters. Both methods calibrate the same parameters with the same
:class:`~pipeline.calibrate.losses.Objective` (same model code, data, penalties) in one process,
and are validated open-loop on the held-out trials. Optimiser settings are the defaults of
default ``config.yaml`` (gradient: bounded least squares with exact Jacobians; annealing:
CEINMS-like, on the incremental compiled objective). Writes ``{"problems": [{name, tendon,
n_mtus, n_dofs, gradient: {wall_s, cpu_s, optimiser, iterations, evaluations_per_s, ...,
validation_rmse_nm, validation_r2}, annealing: {wall_s, cpu_s, evaluations, evaluations_per_s,
ms_per_evaluation, ...}, speedup, loss_ratio}], "load_average": [1, 5, 15 min]}``. ``cpu_s`` is
the process's CPU time: on a busy machine it is the fairer figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.nms.model import TendonModel

NAME = "calibration"
HELP = "Gradient calibration vs simulated annealing on the reference problems (speed, accuracy)."

log = logging.getLogger(__name__)

PROBLEMS = {"upper_limb": {"n_mtus": 16, "n_dofs": 3}, "lower_limb": {"n_mtus": 14, "n_dofs": 3}}
QUICK = {"n_mtus": 4, "n_dofs": 2, "n_samples": 150, "max_iterations": 150,
         "max_evaluations": 1500}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="tiny problems and short runs (smoke test, not the benchmark)")
    parser.add_argument("--max-evaluations", type=int, default=None,
                        help="annealing evaluation cap (default calibration.annealing)")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="AdamW iteration cap (default calibration.optimiser)")
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS),
                        default=list(PROBLEMS), help="which reference problems")
    parser.add_argument("--tendon", choices=("elastic", "stiff"), default="elastic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--skip-annealing", action="store_true",
                        help="only time gradient calibration (no speedup)")


def default_calibration_config() -> dict:
    """The project's default ``calibration:`` section over the synthetic problems' bounds."""
    from pipeline import resources
    from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION
    from pipeline.study import deep_merge, read_yaml

    defaults = read_yaml(resources.default_config())["calibration"]
    return deep_merge(defaults, SYNTHETIC_CALIBRATION)


def run_problem(name: str, *, n_mtus: int, n_dofs: int, n_samples: int = 500,
                tendon: TendonModel,
                seed: int, max_iterations: int | None, max_evaluations: int | None,
                skip_annealing: bool = False) -> dict:
    import torch

    from pipeline.calibrate.annealing import AnnealingOptions
    from pipeline.calibrate.execute import batch_metrics, execute
    from pipeline.calibrate.gradient import GradientOptions
    from pipeline.calibrate.run import calibrate
    from pipeline.calibrate.synthetic import make_problem

    cfg = default_calibration_config()
    cfg["tendon"] = tendon
    problem = make_problem(n_mtus=n_mtus, n_dofs=n_dofs, n_samples=n_samples, tendon=tendon,
                           seed=seed, model_error=0.1, calibration=cfg)
    optimiser = dict(cfg["optimiser"])
    if max_iterations is not None:
        optimiser["max_iterations"] = max_iterations
    annealing = dict(cfg["annealing"])
    if max_evaluations is not None:
        annealing["max_evaluations"] = max_evaluations
    entry: dict = {"name": name, "tendon": tendon, "n_mtus": n_mtus, "n_dofs": n_dofs,
                   "n_parameters": problem.spec.n_free,
                   "n_calibration_trials": problem.calibration.n_trials,
                   "n_validation_trials": problem.validation.n_trials, "n_samples": n_samples,
                   "settings": {"optimiser": optimiser, "annealing": annealing,
                                "torch_threads": torch.get_num_threads()}}
    methods = ["gradient"] if skip_annealing else ["gradient", "annealing"]
    for method in methods:
        log.info("%s: %s calibration", name, method)
        cpu_start = time.process_time()
        outcome = calibrate(problem.spec, problem.calibration, cfg, method=method, seed=seed,
                            gradient_options=GradientOptions.from_config(optimiser,
                                                                         progress=False),
                            annealing_options=AnnealingOptions.from_config(annealing),
                            analyse=False, progress=True)
        cpu_s = time.process_time() - cpu_start
        params = outcome.objective.muscle_parameters(torch.as_tensor(outcome.p))
        output = execute(params, problem.validation, tendon=tendon, emd_s=problem.emd_s)
        metrics = batch_metrics(problem.validation, output)
        count = "evaluations" if method == "annealing" else "iterations"
        entry[method] = {"wall_s": outcome.wall_s, "cpu_s": cpu_s, count: outcome.iterations,
                         "evaluations_per_s": outcome.iterations / outcome.wall_s,
                         "ms_per_evaluation": 1e3 * outcome.wall_s / outcome.iterations,
                         "validation_rmse_nm": metrics["mean_rmse_nm"],
                         "validation_r2": metrics["mean_r2"], "loss": outcome.loss,
                         "converged": outcome.converged}
        if method == "gradient":
            entry[method]["optimiser"] = outcome.optimiser
            entry[method]["polish_evaluations"] = outcome.polish_evaluations
        log.info("%s %s: %.2f s, %d %s, loss %.4g, validation RMSE %.4g N*m, R2 %.4f", name,
                 method, outcome.wall_s, outcome.iterations, count, outcome.loss,
                 metrics["mean_rmse_nm"], metrics["mean_r2"])
    if not skip_annealing:
        entry["speedup"] = entry["annealing"]["wall_s"] / entry["gradient"]["wall_s"]
        entry["speedup_cpu"] = entry["annealing"]["cpu_s"] / entry["gradient"]["cpu_s"]
        entry["loss_ratio"] = entry["gradient"]["loss"] / entry["annealing"]["loss"]
        entry["rmse_ratio"] = (entry["gradient"]["validation_rmse_nm"]
                               / entry["annealing"]["validation_rmse_nm"])
    return entry


def run(args: argparse.Namespace) -> dict:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    problems = []
    for offset, name in enumerate(args.problems):
        size = dict(PROBLEMS[name])
        max_iterations, max_evaluations = args.max_iterations, args.max_evaluations
        if args.quick:
            size = {"n_mtus": QUICK["n_mtus"], "n_dofs": QUICK["n_dofs"],
                    "n_samples": QUICK["n_samples"]}
            max_iterations = max_iterations or QUICK["max_iterations"]
            max_evaluations = max_evaluations or QUICK["max_evaluations"]
        problems.append(run_problem(name, **size, tendon=args.tendon,
                                    seed=args.seed + offset,
                                    max_iterations=max_iterations,
                                    max_evaluations=max_evaluations,
                                    skip_annealing=args.skip_annealing))
    return {"problems": problems, "quick": bool(args.quick), "load_average": list(os.getloadavg())}
