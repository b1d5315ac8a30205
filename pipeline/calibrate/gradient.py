"""Gradient calibration: AdamW on unconstrained parameters, decaying learning rate, early stopping.

The free physical parameters are ``p = lower + (upper - lower) sigmoid(z)``; AdamW updates ``z``
(float64) with ``ExponentialLR(lr_decay)``, and stops when the loss has not improved by the
relative ``min_delta`` for ``patience`` iterations or after ``max_iterations``. The best iterate is
returned. A non-finite loss or gradient restores the best parameters, halves the learning rate and
restarts the optimiser's moments; after ``max_nan_restarts`` such events it raises
:class:`~pipeline.errors.CalibrationError` with what to change.

Then, for objectives that are not plain residual sets (the synergy-hybrid calibration), an L-BFGS
polish (``polish_iterations`` objective evaluations, 0 = off) refines the AdamW optimum on the same
objective. The NMS calibration instead refines with the bounded least-squares solver of
:mod:`pipeline.calibrate.least_squares` (``polish=False`` here; see
:func:`pipeline.calibrate.run.calibrate`), which is also its default method. AdamW finds the basin
cheaply from a poor start but crawls near the optimum (its step is ~learning rate, whatever the
curvature); curvature-aware methods finish in far fewer evaluations.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from pipeline.calibrate.losses import MODEL_FAILURES
from pipeline.calibrate.optimisers import AdamW, minimize_lbfgs
from pipeline.calibrate.spec import ParameterSpec
from pipeline.errors import CalibrationError, describe

log = logging.getLogger(__name__)

#: Columns of history.tsv. ``lr`` is AdamW's learning rate and ``temperature`` annealing's; a
#: row of the other kind of step (L-BFGS, least squares, the other method) has NaN there.
HISTORY_COLUMNS = ("iteration", "loss", "tracking", "penalty", "lr", "temperature", "elapsed_s")
TermsFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class GradientOptions:
    """``calibration.optimiser`` of the config (plus options the config does not expose)."""

    method: str = "least_squares"  #: least_squares | adamw (NMS calibration)
    max_evaluations: int = 200  #: least_squares: residual evaluations at most
    tolerance: float = 1e-10  #: least_squares: relative tolerance on loss, step and gradient
    learning_rate: float = 0.1
    lr_decay: float = 0.99
    weight_decay: float = 0.0
    max_iterations: int = 500
    patience: int = 50
    min_delta: float = 1e-3
    polish_iterations: int = 500  #: evaluations of the refinement after AdamW (0 = off)
    max_nan_restarts: int = 5
    log_every: int = 50
    progress: bool = True

    @classmethod
    def from_config(cls, cfg: dict, **overrides) -> GradientOptions:
        keys = ("method", "max_evaluations", "tolerance", "learning_rate", "lr_decay",
                "weight_decay", "max_iterations", "patience", "min_delta", "polish_iterations")
        return cls(**{**{k: cfg[k] for k in keys if k in cfg}, **overrides})


@dataclass
class GradientResult:
    p: np.ndarray
    loss: float
    iterations: int
    wall_s: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)
    polish_evaluations: int = 0  #: L-BFGS objective evaluations after the AdamW iterations


def calibrate_gradient(terms: TermsFn, spec: ParameterSpec, /, *,
                       options: GradientOptions | None = None, seed: int = 0,
                       p0: np.ndarray | None = None, polish: bool = True,
                       polish_metric: torch.Tensor | None = None) -> GradientResult:
    """Minimise ``terms(p)[0]`` over the free physical parameters of ``spec``.

    Args:
        terms: physical ``p`` ``(n_free,)`` -> ``(total, tracking, penalty)`` scalar tensors.
        spec: parameter layout, bounds and initial values.
        options: optimiser settings.
        seed: seeds torch (the optimiser itself is deterministic).
        p0: start point (default ``spec.initial``).
        polish: run the L-BFGS polish after AdamW (``options.polish_iterations`` evaluations).
        polish_metric: the polish's diagonal preconditioner in the unconstrained variables
            (:func:`~pipeline.calibrate.optimisers.minimize_lbfgs`); ``None`` is the identity.
    """
    opts = options or GradientOptions()
    torch.manual_seed(seed)
    start = time.perf_counter()
    z = spec.to_unconstrained(spec.initial if p0 is None else p0).clone().requires_grad_(True)
    lr = float(opts.learning_rate)
    optimiser = _make_optimiser(z, lr, opts)
    best_z = z.detach().clone()
    best_loss = ref_loss = math.inf
    since_best = 0
    restarts = 0
    history: list[dict[str, float]] = []
    stopped = "max_iterations"
    bar = tqdm(total=opts.max_iterations, file=sys.stderr, disable=not opts.progress,
               desc="calibrate (AdamW)", dynamic_ncols=True, leave=False)
    iteration = 0
    try:
        for iteration in range(1, opts.max_iterations + 1):
            z.grad = None
            try:
                total, tracking, penalty = terms(spec.to_physical(z))
                loss = float(total.detach())
                if math.isfinite(loss):
                    total.backward()
            except MODEL_FAILURES as exc:
                log.debug("model failed at iteration %d: %s", iteration, exc)
                loss = math.nan
            if not math.isfinite(loss) or z.grad is None or not bool(torch.isfinite(z.grad).all()):
                restarts += 1
                if restarts > opts.max_nan_restarts or not math.isfinite(best_loss):
                    raise CalibrationError(describe(
                        None, f"the loss or its gradient became non-finite at iteration "
                        f"{iteration} ({restarts} restarts with a lower learning rate)",
                        "lower calibration.optimiser.learning_rate (e.g. by 10x), narrow "
                        "calibration.bounds of the fibre and tendon slack lengths so fibres stay "
                        "longer than their pennation thickness, or check the trials' MTU lengths"))
                lr *= 0.5
                log.warning("non-finite loss/gradient at iteration %d: restoring the best "
                            "parameters and halving the learning rate to %.3g", iteration, lr)
                with torch.no_grad():
                    z.copy_(best_z)
                optimiser = _make_optimiser(z, lr, opts)
                continue
            current_lr = optimiser.learning_rate
            history.append({"iteration": iteration, "loss": loss,
                            "tracking": float(tracking.detach()),
                            "penalty": float(penalty.detach()), "lr": current_lr,
                            "elapsed_s": time.perf_counter() - start})
            if loss < best_loss:
                best_loss, best_z = loss, z.detach().clone()
            # Early stopping (Keras-like): count iterations since the loss last improved on the
            # reference value by more than the relative min_delta.
            if loss < ref_loss * (1.0 - opts.min_delta) or not math.isfinite(ref_loss):
                ref_loss, since_best = loss, 0
            else:
                since_best += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.6g}", best=f"{best_loss:.6g}", refresh=False)
            if opts.log_every and iteration % opts.log_every == 0:
                log.info("iteration %d: loss %.6g (tracking %.6g, penalty %.3g), lr %.3g",
                         iteration, loss, history[-1]["tracking"], history[-1]["penalty"],
                         current_lr)
            if since_best >= opts.patience:
                stopped = "patience"
                break
            optimiser.step(z.grad)
    finally:
        bar.close()
    polish_evaluations = 0
    if polish and opts.polish_iterations > 0:
        n_rows = len(history)
        best_z, best_loss = _polish(terms, spec, best_z, best_loss, opts, history, start,
                                    polish_metric)
        polish_evaluations = len(history) - n_rows
    with torch.no_grad():
        p = spec.to_physical(best_z).numpy().copy()
    wall = time.perf_counter() - start
    log.info("gradient calibration: best loss %.6g after %d iterations in %.2f s (stopped: %s)",
             best_loss, iteration, wall, stopped)
    return GradientResult(p, best_loss, iteration, wall, stopped, history, polish_evaluations)


def _make_optimiser(z: torch.Tensor, lr: float, opts: GradientOptions) -> AdamW:
    return AdamW(z, learning_rate=lr, lr_decay=opts.lr_decay,
                 weight_decay=opts.weight_decay)


def _polish(terms: TermsFn, spec: ParameterSpec, z0: torch.Tensor, best_loss: float,
            opts: GradientOptions, history: list[dict[str, float]], start: float,
            metric: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """L-BFGS (strong Wolfe line search) from the AdamW optimum; returns the best iterate seen.

    Every objective evaluation is a history row (``lr`` is NaN: L-BFGS has none). A model failure
    or a non-finite loss inside the line search ends the polish with the best iterate so far.
    """
    best_z, best_loss_seen = z0, best_loss
    offset = history[-1]["iteration"] if history else 0
    first_row = len(history)
    bar = tqdm(total=opts.polish_iterations, file=sys.stderr, disable=not opts.progress,
               desc="calibrate (L-BFGS)", dynamic_ncols=True, leave=False)

    def loss_and_gradient(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        nonlocal best_z, best_loss_seen
        z = x.detach().clone().requires_grad_(True)
        total, tracking, penalty = terms(spec.to_physical(z))
        loss = float(total.detach())
        if not math.isfinite(loss):
            raise _PolishStop(f"non-finite loss {loss}")
        total.backward()
        if z.grad is None:
            raise _PolishStop("the loss does not depend on the parameters (no gradient)")
        if not bool(torch.isfinite(z.grad).all()):
            raise _PolishStop("non-finite gradient")
        history.append({"iteration": offset + len(history) - first_row + 1, "loss": loss,
                        "tracking": float(tracking.detach()), "penalty": float(penalty.detach()),
                        "lr": math.nan, "elapsed_s": time.perf_counter() - start})
        if loss < best_loss_seen:
            best_z, best_loss_seen = z.detach().clone(), loss
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.6g}", best=f"{best_loss_seen:.6g}", refresh=False)
        return loss, z.grad

    try:
        minimize_lbfgs(loss_and_gradient, z0, max_evaluations=opts.polish_iterations,
                       history_size=50, tolerance_grad=1e-12, tolerance_change=1e-16,
                       metric=metric)
    except (_PolishStop, *MODEL_FAILURES) as exc:
        log.info("L-BFGS polish stopped early (%s); keeping its best iterate", exc)
    finally:
        bar.close()
    log.info("L-BFGS polish: loss %.6g -> %.6g (%d evaluations)", best_loss, best_loss_seen,
             len(history) - first_row)
    return best_z, best_loss_seen


class _PolishStop(Exception):
    """Raised inside the L-BFGS closure to end the polish (non-finite loss or gradient)."""


def history_tsv(history: list[dict[str, float]]) -> str:
    """The history as tab-separated text with a header (``HISTORY_COLUMNS``); a column a row
    does not have is written as ``nan``."""
    lines = ["\t".join(HISTORY_COLUMNS)]
    for row in history:
        lines.append("\t".join(
            str(int(row[c])) if c == "iteration" else f"{row.get(c, math.nan):.10g}"
            for c in HISTORY_COLUMNS))
    return "\n".join(lines) + "\n"
