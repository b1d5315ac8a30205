"""Study-level summary: one block of rows per subject and calibration method."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.plots.load import method_dir, per_trial_metrics, read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodSummary:
    """Validation accuracy, cost and identifiability of one method on one subject.

    ``per_dof`` maps DOF -> (mean RMSE over validation trials in N·m, mean R²).
    """

    subject: str
    method: str
    per_dof: dict[str, tuple[float, float]]
    mean_rmse_nm: float | None
    mean_r2: float | None
    wall_s: float | None
    iterations: int | None
    at_bound: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    pairs: list[str] = field(default_factory=list)
    n_parameters: int | None = None
    provenance: Mapping = field(default_factory=dict)
    missing: str | None = None
    #: DOFs whose calibration does not carry over to the held-out trials (metrics.json's
    #: ``generalisation``) and its warning
    not_carried_over: list[str] = field(default_factory=list)
    generalisation_warning: str | None = None
    #: why the check did not run (None when it ran)
    generalisation_not_checked: str | None = None


def _float(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def identifiability_flags(parameters: Mapping) -> list[str]:
    """Parameters flagged by the identifiability analysis of parameters.json (as written)."""
    block = parameters.get("identifiability")
    if not isinstance(block, Mapping):
        return []
    return [str(f) for f in block.get("flags", []) or []]


def correlated_pairs(parameters: Mapping) -> list[str]:
    """``"a ~ b (r = x)"`` for every highly correlated pair of the identifiability analysis."""
    block = parameters.get("identifiability")
    pairs = []
    for pair in (block.get("correlated_pairs", []) or []) if isinstance(block, Mapping) else []:
        if isinstance(pair, Mapping) and "a" in pair and "b" in pair:
            corr = _float(pair.get("correlation"))
            text = f"{pair['a']} ~ {pair['b']}"
            pairs.append(f"{text} (r = {corr:.2f})" if corr is not None else text)
    return pairs


def flag_counts(flags: Sequence[str]) -> dict[str, int]:
    """Flags counted by parameter kind (``"delt_ant.c1"`` and ``"c1/delt_ant"`` count as c1)."""
    from pipeline.plots.calibration import KIND_TO_KEY, PARAMETER_LABELS

    known = set(PARAMETER_LABELS) | set(KIND_TO_KEY)
    counts: dict[str, int] = {}
    for flag in flags:
        parts = [p for sep in "/.:" for p in flag.split(sep) if sep in flag]
        kind = next((p for p in parts if p in known), parts[-1] if parts else flag)
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def at_bound_parameters(parameters: Mapping) -> list[str]:
    """Calibrated values that ended at a bound, counted as parameters.json and the parameters
    figure count them."""
    from pipeline.plots.calibration import at_bound_list

    return at_bound_list(parameters)


def _not_checked(metrics: Mapping, generalisation: Mapping) -> str | None:
    """Why metrics.json holds no verdict on whether the calibration carries over (None: it
    does)."""
    if not metrics:
        return "no metrics.json"
    if not generalisation:
        return "its metrics.json predates the check: run the workflow again to validate anew"
    if not generalisation.get("checked", True):
        return str(metrics.get("warning") or "no held-out trials")
    return None


def summarise_method(root: Path, subject: str, method: str) -> MethodSummary:
    """Read parameters.json and metrics.json of one method; note what is missing."""
    folder = method_dir(root, subject, method)
    parameters = read_json(folder / "parameters.json", required=False)
    metrics = read_json(folder / "metrics.json", required=False)
    missing = None
    if not parameters or not metrics:
        missing = f"no {'parameters.json' if not parameters else 'metrics.json'} in {folder}"
        log.warning("%s/%s: %s", subject, method, missing)
    by_dof: dict[str, list[tuple[float, float]]] = {}
    for dofs in per_trial_metrics(metrics).values():
        for dof, m in dofs.items():
            by_dof.setdefault(dof, []).append((m["rmse_nm"], m["r2"]))
    per_dof = {dof: (float(np.mean([v[0] for v in vals])), float(np.nanmean([v[1] for v in vals]))
                     if any(np.isfinite(v[1]) for v in vals) else float("nan"))
               for dof, vals in by_dof.items()}
    iterations = parameters.get("iterations", parameters.get("evaluations"))
    generalisation = metrics.get("generalisation") or {}
    return MethodSummary(
        subject=subject, method=method, per_dof=per_dof,
        mean_rmse_nm=_float(metrics.get("mean_rmse_nm")), mean_r2=_float(metrics.get("mean_r2")),
        wall_s=_float(parameters.get("wall_s")),
        iterations=int(count) if (count := _float(iterations)) is not None else None,
        at_bound=at_bound_parameters(parameters), flags=identifiability_flags(parameters),
        pairs=correlated_pairs(parameters),
        n_parameters=(parameters.get("identifiability") or {}).get("n_parameters"),
        provenance=parameters.get("provenance", {}) or {}, missing=missing,
        not_carried_over=list(generalisation.get("flagged") or {}),
        generalisation_warning=generalisation.get("warning"),
        generalisation_not_checked=_not_checked(metrics, generalisation))


def study_summary(root: Path, subjects: Sequence[str],
                  methods: Sequence[str]) -> list[MethodSummary]:
    return [summarise_method(root, s, m) for s in subjects for m in methods]
