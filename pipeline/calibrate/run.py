"""One calibration from a spec and a batch of trials: optimise, analyse, build the documents.

:func:`calibrate` runs gradient calibration or simulated annealing on the same
:class:`~pipeline.calibrate.losses.Objective`, then the identifiability analysis at the optimum,
and returns everything the CLI writes (``parameters.json`` document, history).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pipeline.calibrate import identifiability as ident
from pipeline.calibrate.activation_pairs import off_the_fold
from pipeline.calibrate.annealing import AnnealingOptions, anneal
from pipeline.calibrate.export import log_at_bound, parameters_document
from pipeline.calibrate.gradient import GradientOptions, calibrate_gradient
from pipeline.calibrate.least_squares import (
    STALL_GAIN,
    STALL_STEPS,
    LeastSquaresResult,
    solve_least_squares,
)
from pipeline.calibrate.losses import Objective, penalties_from_config
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.errors import ConfigError, describe
from pipeline.nms import DEFAULT_EMD_S

log = logging.getLogger(__name__)

METHODS = ("gradient", "annealing")
OPTIMISERS = ("least_squares", "adamw")


@dataclass
class CalibrationOutcome:
    method: str
    spec: ParameterSpec
    objective: Objective
    p: np.ndarray
    loss: float
    tracking: float
    penalty: float
    iterations: int
    wall_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    identifiability: ident.Identifiability | None = None
    converged: bool = True
    polish_evaluations: int = 0  #: adamw: least-squares evaluations after the AdamW iterations
    #: Why the optimiser stopped: gtol / ftol / xtol / max_evaluations / stalled (least squares;
    #: stalled: its mean-and-gap stage ended worse than the point it started from), patience /
    #: max_iterations (adamw), converged / max_evaluations (annealing). ``converged`` is True only
    #: when its stopping rule was met.
    stopped: str = ""
    optimiser: str = ""  #: gradient: least_squares | adamw
    #: Jacobian of the tracking residuals at ``p`` from the solver (reused by the analysis)
    tracking_jacobian: np.ndarray | None = None

    def document(self, *, provenance: dict | None = None, **extra: Any) -> dict[str, Any]:
        ident_json = self.identifiability.to_json() if self.identifiability else {}
        se = self.identifiability.standard_errors if self.identifiability else None
        counts: dict[str, Any] = {"iterations": self.iterations}
        if self.method == "annealing":
            counts["evaluations"] = self.iterations
        else:
            counts["optimiser"] = self.optimiser
            if self.polish_evaluations:
                counts["polish_evaluations"] = self.polish_evaluations
        return parameters_document(
            self.spec, self.p, method=self.method, tendon=self.objective.tendon,
            standard_errors=se, identifiability=ident_json, provenance=provenance,
            emd_s=self.objective.emd_s, loss={"total": self.loss, "tracking": self.tracking,
                                              "penalty": self.penalty},
            wall_s=self.wall_s, **counts, converged=self.converged, stopped=self.stopped,
            objective=objective_document(self.objective), **extra)


def objective_document(objective: Objective) -> dict[str, Any]:
    """``parameters.json``'s ``objective``: which loss was minimised (and its model settings)."""
    shift = getattr(objective, "percentage_change", None)
    if shift is None:
        return {"name": "default"}
    return {"name": "ceinms", "percentage_change": shift}


OBJECTIVES = ("default", "ceinms")


def make_objective(spec: ParameterSpec, batch: TrialBatch,
                   calibration: Mapping[str, Any]) -> Objective:
    """The objective ``calibration.objective`` names (``default`` or ``ceinms``)."""
    kind = calibration.get("objective", "default")
    if kind not in OBJECTIVES:
        raise ConfigError(describe("config.yaml", f"calibration.objective: unknown {kind!r}",
                                   f"use one of {', '.join(OBJECTIVES)}"))
    if kind == "ceinms":
        from pipeline.calibrate.ceinms_objective import (
            CeinmsObjective,
            percentage_change_from_config,
        )

        return CeinmsObjective(spec, batch, tendon=calibration.get("tendon", "elastic"),
                               emd_s=float(calibration.get("emd_s", DEFAULT_EMD_S)),
                               percentage_change=percentage_change_from_config(calibration),
                               prior_weight=float(calibration.get("prior_weight", 0.0)))
    return Objective(spec, batch, tendon=calibration.get("tendon", "elastic"),
                     emd_s=float(calibration.get("emd_s", DEFAULT_EMD_S)),
                     normalise_by_variance=bool(calibration.get("normalise_by_variance", True)),
                     penalties=penalties_from_config(calibration.get("penalties")),
                     prior_weight=float(calibration.get("prior_weight", 0.0)))


def least_squares_solver(objective: Objective) -> Callable[..., LeastSquaresResult]:
    """The least-squares solver for ``objective``: CEINMS's objective needs the continuation
    over its discontinuous fibre-length penalty
    (:func:`~pipeline.calibrate.ceinms_objective.solve_ceinms_least_squares`)."""
    if objective_document(objective)["name"] == "ceinms":
        from pipeline.calibrate.ceinms_objective import solve_ceinms_least_squares

        return solve_ceinms_least_squares
    return solve_least_squares


def calibrate(spec: ParameterSpec, batch: TrialBatch, calibration: Mapping[str, Any], *,
              method: str = "gradient", seed: int | None = None, p0: np.ndarray | None = None,
              gradient_options: GradientOptions | None = None,
              annealing_options: AnnealingOptions | None = None,
              analyse: bool = True, progress: bool = True) -> CalibrationOutcome:
    """Calibrate the free parameters of ``spec`` on ``batch`` with ``method``.

    Args:
        calibration: the merged ``calibration:`` config section.
        seed: default ``calibration.seed``.
        p0: physical start point (default the spec's initial values).
        gradient_options, annealing_options: override the config's optimiser settings.
        analyse: run the identifiability analysis at the optimum.

    The gradient method runs ``calibration.optimiser.method``: ``least_squares`` (default;
    :mod:`pipeline.calibrate.least_squares`) or ``adamw`` (:mod:`pipeline.calibrate.gradient`)
    followed by the same least-squares solver as its refinement (``polish_iterations``
    evaluations, 0 = off).
    """
    if method not in METHODS:
        raise ConfigError(describe(None, f"unknown calibration method {method!r}",
                                   f"use one of {', '.join(METHODS)}"))
    seed = int(calibration.get("seed", 0) if seed is None else seed)
    torch.manual_seed(seed)
    device = resolve_device(calibration)
    if device.type != "cpu":
        batch = batch.to(device)
    objective = make_objective(spec, batch, calibration)
    log.info("calibrating %d parameters (%s) of %d MTUs on %d trial(s), %d DOF(s), %s tendon, "
             "method %s", spec.n_free, ", ".join(spec.free_kinds), len(spec.mtu_names),
             batch.n_trials, len(batch.dof_names), objective.tendon, method)
    start_p = spec.initial if p0 is None else np.asarray(p0, dtype=float)
    polish_evaluations = 0
    tracking_jacobian = None
    optimiser = ""
    if method == "gradient":
        opts = gradient_options or GradientOptions.from_config(
            calibration.get("optimiser", {}), progress=progress)
        optimiser = opts.method
        if optimiser not in OPTIMISERS:
            raise ConfigError(describe("config.yaml", f"calibration.optimiser.method "
                                       f"{optimiser!r} is unknown",
                                       f"use one of {', '.join(OPTIMISERS)}"))
        solve = least_squares_solver(objective)
        start_p = off_the_fold(spec, start_p)
        if optimiser == "least_squares":
            solved = solve(objective, start_p, max_evaluations=opts.max_evaluations,
                           tolerance=opts.tolerance)
            p, iterations, wall, history = solved.p, solved.evaluations, solved.wall_s, \
                solved.history
            tracking_jacobian = solved.tracking_jacobian
            converged = solved.stopped not in ("max_evaluations", "stalled")
            stopped = solved.stopped
        else:
            result = calibrate_gradient(objective.terms, spec, options=opts, seed=seed,
                                        p0=start_p, polish=False)
            p, iterations, wall, history = result.p, result.iterations, result.wall_s, \
                result.history
            # Converged only when AdamW met its stopping rule (no improvement for `patience`
            # iterations), not when it ran out of iterations.
            converged, stopped = result.stopped == "patience", result.stopped
            if opts.polish_iterations > 0:
                solved = solve(
                    objective, p, max_evaluations=opts.polish_iterations,
                    tolerance=opts.tolerance, history=history,
                    iteration_offset=int(history[-1]["iteration"]) if history else 0,
                    elapsed_offset_s=wall)
                p, wall = solved.p, wall + solved.wall_s
                polish_evaluations = solved.evaluations
                tracking_jacobian = solved.tracking_jacobian
    else:
        opts_a = annealing_options or AnnealingOptions.from_config(
            calibration.get("annealing", {}))
        x0 = spec.normalise(start_p)

        # The default objective and CEINMS's (stiff tendon) re-simulate only the MTUs a move
        # touches; the others are evaluated whole.
        from pipeline.calibrate.incremental import IncrementalLoss, supports  # numba: annealing

        loss_of = IncrementalLoss(objective) if supports(objective) else objective.loss_numpy

        def normalised_loss(x: np.ndarray) -> float:
            return loss_of(spec.denormalise(x))

        started = time.perf_counter()

        def report(evaluations: int, best: float, temperature: float) -> None:
            log.info("annealing: %d evaluations, best loss %.6g, T %.3g (%.1f s)",
                     evaluations, best, temperature, time.perf_counter() - started)

        # Annealing visits implausible corners on purpose; the model's warnings there are noise.
        nms_log = logging.getLogger("pipeline.nms")
        level = nms_log.level
        nms_log.setLevel(logging.ERROR)
        try:
            res = anneal(normalised_loss, x0, options=opts_a, seed=seed,
                         progress=report if progress else None)
        finally:
            nms_log.setLevel(level)
        p = spec.denormalise(res.x)
        iterations, wall, converged = res.evaluations, res.wall_s, res.converged
        stopped = "converged" if converged else "max_evaluations"
        history = [{"iteration": h["evaluations"], "loss": h["loss"], "tracking": np.nan,
                    "penalty": np.nan, "lr": np.nan, "temperature": h["temperature"],
                    "elapsed_s": np.nan}
                   for h in res.history]
    with torch.no_grad():
        terms = objective.terms(torch.as_tensor(p, dtype=torch.float64))
    outcome = CalibrationOutcome(method, spec, objective, p, float(terms.total),
                                 float(terms.tracking), float(terms.penalty), iterations, wall,
                                 history, None, converged, polish_evaluations, stopped,
                                 optimiser, tracking_jacobian)
    if analyse:
        outcome.identifiability = analyse_identifiability(objective, p, calibration,
                                                          jacobian=tracking_jacobian)
    return outcome


def resolve_device(calibration: Mapping[str, Any]) -> torch.device:
    """``calibration.device`` (``cpu`` by default, ``cuda`` or ``cuda:N`` for a GPU), checked."""
    name = str(calibration.get("device", "cpu") or "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(describe("config.yaml", f"calibration.device {name!r} is not a device "
                                   f"({exc})", "use cpu, cuda or cuda:N")) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(describe("config.yaml", f"calibration.device is {name!r} but this "
                                   "machine has no CUDA GPU visible to torch",
                                   "set calibration.device: cpu, or run on a GPU node with a "
                                   "CUDA build of torch"))
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(describe("config.yaml", f"calibration.device {name!r} is not "
                                   "supported", "use cpu, cuda or cuda:N"))
    return device


def analyse_identifiability(objective: Objective, p: np.ndarray,
                            calibration: Mapping[str, Any], *,
                            jacobian: np.ndarray | None = None) -> ident.Identifiability:
    """Identifiability at ``p`` from the tracking residuals' Jacobian (``jacobian``, e.g. the
    solver's last one, or the exact column-compressed one computed here)."""
    cfg = calibration.get("identifiability", {})
    labels = [f"{entry}.{kind}" for kind, entry in objective.spec.labels]
    if jacobian is None:
        full = objective.residuals_and_jacobian(torch.as_tensor(p, dtype=torch.float64))[1]
        jacobian = full[:objective.n_tracking_residuals]
    result = ident.analyse(objective.residuals, p, labels=labels, jacobian=jacobian,
                           series=objective.residual_series(),
                           max_relative_se=float(cfg.get("max_relative_se", 0.1)),
                           max_abs_correlation=float(cfg.get("max_abs_correlation", 0.95)))
    ident.log_report(result)
    return result


def report_outcome(outcome: CalibrationOutcome, document: Mapping[str, Any]) -> None:
    log.info("%s calibration: loss %.6g (tracking %.6g, penalty %.3g), %d %s, %.2f s",
             outcome.method, outcome.loss, outcome.tracking, outcome.penalty, outcome.iterations,
             "evaluations" if outcome.method == "annealing" else "iterations", outcome.wall_s)
    if not outcome.converged and outcome.stopped == "stalled":
        log.warning("%s calibration stalled: its progress fell below %g %% over %d steps and the "
                    "(c1, c2) mean-and-gap stage found nothing better; parameters.json says "
                    "converged: false. Fix: look at the parameters at their bounds (the loss may "
                    "be flat there), or start from other calibration.initial values",
                    outcome.method, 100 * STALL_GAIN, STALL_STEPS)
    elif not outcome.converged:
        if outcome.method == "annealing":
            key = "calibration.annealing.max_evaluations"
        elif outcome.stopped == "max_evaluations":
            key = "calibration.optimiser.max_evaluations"
        else:
            key = "calibration.optimiser.max_iterations"
        log.warning("%s calibration did not meet its stopping rule (stopped at %s after %d); "
                    "parameters.json says converged: false. Fix: raise %s", outcome.method,
                    outcome.stopped, outcome.iterations, key)
    log_at_bound(document)
