"""``bench recovery``: parameter recovery from N(truth, 10 % of truth) initial guesses.

For each seed: a synthetic problem (its own true parameters and signals), an initial guess drawn
from N(truth, 10 % |truth|) (kept inside the bounds), gradient calibration (AdamW, then the
least-squares refinement of :mod:`pipeline.calibrate.refine`), and the absolute % error of every
calibrated parameter. ``c1``/``c2`` are compared as unordered pairs (the activation filter is
symmetric in them). ``--noise`` adds realistic EMG-envelope, MTU-length/moment-arm (marker-like)
and ID-moment noise (:func:`pipeline.calibrate.synthetic.add_noise`). Writes
``{"mean_abs_pct_error", "per_parameter": {kind: mean}, "seeds": n, ...}``.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.nms.model import TendonModel

NAME = "recovery"
HELP = "Parameter recovery from N(truth, 10%%) initial guesses on synthetic data (--noise)."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--noise", action="store_true", help="add realistic EMG and marker noise")
    parser.add_argument("--noise-scale", type=float, default=1.0,
                        help="multiply every noise level (with --noise)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (problems)")
    parser.add_argument("--n-mtus", type=int, default=8)
    parser.add_argument("--n-dofs", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--tendon", choices=("elastic", "stiff"), default="elastic")
    parser.add_argument("--optimiser", choices=("least_squares", "adamw"),
                        default="least_squares", help="calibration.optimiser.method")
    parser.add_argument("--max-evaluations", type=int, default=200,
                        help="least-squares residual evaluations at most")
    parser.add_argument("--max-iterations", type=int, default=500, help="AdamW iterations")
    parser.add_argument("--refine-evaluations", type=int, default=100,
                        help="adamw: least-squares refinement evaluations (0: AdamW only)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")


def recover(seed: int, *, n_mtus: int, n_dofs: int, n_samples: int, tendon: TendonModel,
            noise: float, max_iterations: int, refine_evaluations: int,
            optimiser: str = "least_squares", max_evaluations: int = 200) -> dict:
    import numpy as np

    from pipeline.calibrate.gradient import GradientOptions
    from pipeline.calibrate.run import calibrate
    from pipeline.calibrate.synthetic import make_problem, perturbed_start, recovery_errors

    problem = make_problem(n_mtus=n_mtus, n_dofs=n_dofs, n_calibration=3, n_validation=1,
                           n_samples=n_samples, tendon=tendon, seed=seed, noise=noise)
    p0 = perturbed_start(problem.spec, problem.truth, rel_sd=0.1, seed=seed + 100)
    options = GradientOptions(method=optimiser, max_evaluations=max_evaluations,
                              max_iterations=max_iterations, learning_rate=0.05, lr_decay=0.995,
                              patience=50, min_delta=1e-4, polish_iterations=refine_evaluations,
                              progress=False, log_every=0)
    outcome = calibrate(problem.spec, problem.calibration, problem.config, method="gradient",
                        seed=seed, p0=p0, gradient_options=options, analyse=False,
                        progress=False)
    errors = recovery_errors(problem.spec, outcome.p, problem.truth)
    start = recovery_errors(problem.spec, p0, problem.truth)
    all_err = np.concatenate(list(errors.values()))
    log.info("seed %d: mean abs error %.4f %% (start %.2f %%), loss %.3g, %.1f s", seed,
             all_err.mean(), np.concatenate(list(start.values())).mean(), outcome.loss,
             outcome.wall_s)
    return {"seed": seed, "mean_abs_pct_error": float(all_err.mean()),
            "initial_mean_abs_pct_error": float(np.concatenate(list(start.values())).mean()),
            "per_parameter": {k: float(v.mean()) for k, v in errors.items()},
            "max_abs_pct_error": float(all_err.max()), "loss": outcome.loss,
            "wall_s": outcome.wall_s}


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    runs = [recover(seed, n_mtus=args.n_mtus, n_dofs=args.n_dofs, n_samples=args.n_samples,
                    tendon=args.tendon, noise=args.noise_scale if args.noise else 0.0,
                    max_iterations=args.max_iterations,
                    refine_evaluations=args.refine_evaluations, optimiser=args.optimiser,
                    max_evaluations=args.max_evaluations) for seed in range(args.seeds)]
    kinds = runs[0]["per_parameter"].keys()
    return {
        "mean_abs_pct_error": float(np.mean([r["mean_abs_pct_error"] for r in runs])),
        "per_parameter": {k: float(np.mean([r["per_parameter"][k] for r in runs]))
                          for k in kinds},
        "seeds": len(runs),
        "noise": bool(args.noise),
        "noise_scale": args.noise_scale if args.noise else 0.0,
        "tendon": args.tendon,
        "problem": {"n_mtus": args.n_mtus, "n_dofs": args.n_dofs, "n_samples": args.n_samples,
                    "n_calibration_trials": 3},
        "runs": runs,
    }
