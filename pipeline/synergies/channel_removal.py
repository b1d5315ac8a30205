"""Channel-removal experiment (paper 002, section III-D and Fig. 5).

1. Reference: EMG-driven calibration with every recorded channel.
2. Ranking: one EMG-driven calibration per channel with that channel alone removed (its MTU driven
   by zero excitation); channels are ordered from the lowest to the highest resulting RMSE
   (mean over DOFs and calibration trials): the least informative channel is removed first.
3. Cumulative removal: for 1, 2, ... removed channels (in that order), calibrate EMG-driven (removed
   MTUs get zero excitation) and synergy-hybrid (removed MTUs get synthesised excitations), both
   from the same start and with the same parameter spec, and record RMSE and R² (calibration
   trials, and validation trials when given) and the mean normalised parameter difference from
   the reference model: ``|p - p_ref| / (upper - lower)`` averaged over the optimal fibre length,
   tendon slack length and strength coefficient of every MTU (the parameters of Fig. 5).

The number of synergies is chosen once from all channels (VAF rule or fixed) and capped at the
number of channels still recorded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.calibrate.activation_pairs import off_the_fold
from pipeline.calibrate.gradient import GradientOptions, calibrate_gradient
from pipeline.calibrate.losses import Objective
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.synergies.hybrid import HybridOptions, HybridResult, calibrate_synergy_hybrid
from pipeline.synergies.nmf import extract_synergies
from pipeline.synergies.validation import evaluate, synthesise_unrecorded

log = logging.getLogger(__name__)

__all__ = ["ChannelRemovalResult", "parameter_difference", "plot_channel_removal",
           "run_channel_removal"]

#: Parameter kinds compared with the all-channels model (paper 002, Fig. 5).
COMPARED_KINDS = ("optimal_fiber_length", "tendon_slack_length", "strength")
METHODS = ("emg_driven", "synergy_hybrid")


@dataclass(frozen=True)
class ChannelRemovalResult:
    ranking: pd.DataFrame  #: channel, rmse_nm when removed alone, rank (1 = removed first)
    table: pd.DataFrame  #: one row per (n_removed, method)
    order: tuple[str, ...]


def parameter_difference(spec: ParameterSpec, p: np.ndarray, reference: np.ndarray, *,
                         kinds: Sequence[str] = COMPARED_KINDS) -> float:
    """Mean ``|p - p_ref| / (upper - lower)`` over the free parameters of ``kinds``."""
    slices = spec.slices()
    diff = np.abs(spec.normalise(p) - spec.normalise(reference))
    parts = [diff[slices[k]] for k in kinds if k in slices]
    return float(np.mean(np.concatenate(parts))) if parts else float("nan")


def _zeroed(batch: TrialBatch, names: Sequence[str]) -> TrialBatch:
    idx = [batch.mtu_names.index(m) for m in names]
    excitation = batch.excitation.clone()
    excitation[:, idx] = 0.0
    before = batch.excitation_before
    if before is not None:  # a removed channel has no EMG before the window either
        before = before.clone()
        before[:, idx] = float("nan")
    return dataclasses.replace(batch, excitation=excitation, excitation_before=before)


def _objective(template: Objective, batch: TrialBatch) -> Objective:
    return Objective(template.spec, batch, tendon=template.tendon, emd_s=template.emd_s,
                     penalties=template.penalties, dof_weights=template.dof_weights.numpy(),
                     prior_weight=template.prior_weight)


def _emg_driven(template: Objective, removed: Sequence[str], p0: np.ndarray,
                options: GradientOptions) -> tuple[np.ndarray, Objective]:
    objective = _objective(template, _zeroed(template.data, removed))
    # off the (c1, c2) fold, as the synergy-hybrid arm starts (AdamW cannot leave c1 = c2)
    result = calibrate_gradient(objective.terms, objective.spec, options=options,
                                p0=off_the_fold(objective.spec, p0))
    return result.p, objective


def _scores(objective: Objective, p: np.ndarray, batch: TrialBatch, prefix: str,
            ) -> dict[str, float]:
    metrics, _ = evaluate(objective, p, batch)
    return {f"{prefix}_rmse_nm": metrics["mean_rmse_nm"], f"{prefix}_r2": metrics["mean_r2"]}


def run_channel_removal(
    objective: Objective,
    /,
    *,
    validation: TrialBatch | None = None,
    channels: Sequence[str] | None = None,
    max_removed: int | None = None,
    synergy_options: HybridOptions | None = None,
    gradient_options: GradientOptions | None = None,
    p0: np.ndarray | None = None,
) -> ChannelRemovalResult:
    """Run the experiment (module docstring) on ``objective``'s calibration trials.

    ``objective`` must model every channel with its recorded excitation. ``channels`` limits the
    removable channels (default all MTUs); ``max_removed`` the number removed (default all but
    one).
    """
    syn_opts = synergy_options or HybridOptions()
    grad_opts = gradient_options or GradientOptions(progress=False)
    spec, data = objective.spec, objective.data
    start = spec.initial if p0 is None else np.asarray(p0, dtype=float)
    channels = tuple(channels or data.mtu_names)
    max_removed = len(channels) - 1 if max_removed is None else min(max_removed,
                                                                    len(channels) - 1)
    n_synergies = syn_opts.n_synergies or extract_synergies(
        [data.excitation[k, :, :n].numpy() for k, n in enumerate(data.lengths())],
        vaf_threshold=syn_opts.vaf_threshold, restarts=syn_opts.restarts,
        seed=syn_opts.seed).n_synergies
    log.info("channel removal: %d channels, %d synergies, up to %d removed", len(channels),
             n_synergies, max_removed)

    reference, _ = _emg_driven(objective, (), start, grad_opts)
    ranking_rows = []
    for channel in channels:
        p, obj = _emg_driven(objective, (channel,), start, grad_opts)
        metrics, _ = evaluate(obj, p, obj.data)
        ranking_rows.append({"channel": channel, "rmse_nm": metrics["mean_rmse_nm"]})
        log.info("removing %s alone: calibration RMSE %.4g N*m", channel, metrics["mean_rmse_nm"])
    ranking = pd.DataFrame(ranking_rows).sort_values("rmse_nm", kind="stable")
    ranking["rank"] = np.arange(1, len(ranking) + 1)
    order = tuple(ranking["channel"])

    rows = [_row(0, (), "reference", objective, reference, reference, validation, n_synergies)]
    for n_removed in range(1, max_removed + 1):
        removed = order[:n_removed]
        n_recorded = len(data.mtu_names) - n_removed
        p_emg, obj_emg = _emg_driven(objective, removed, start, grad_opts)
        val_emg = _zeroed(validation, removed) if validation is not None else None
        rows.append(_row(n_removed, removed, "emg_driven", obj_emg, p_emg, reference, val_emg,
                         None))
        k = min(n_synergies, n_recorded)
        hybrid = calibrate_synergy_hybrid(
            obj_emg, unrecorded=removed, p0=start, gradient_options=grad_opts,
            options=dataclasses.replace(syn_opts, n_synergies=k))
        filled_cal = dataclasses.replace(obj_emg.data, excitation=torch.as_tensor(
            _hybrid_excitation(obj_emg.data, hybrid, removed)))
        val_hyb = (synthesise_unrecorded(validation, hybrid.weightings, unrecorded=removed).batch
                   if validation is not None else None)
        rows.append(_row(n_removed, removed, "synergy_hybrid", _objective(objective, filled_cal),
                         hybrid.p, reference, val_hyb, k))
        log.info("%d removed: RMSE EMG-driven %.4g vs synergy-hybrid %.4g N*m", n_removed,
                 rows[-2]["calibration_rmse_nm"], rows[-1]["calibration_rmse_nm"])
    return ChannelRemovalResult(ranking.reset_index(drop=True), pd.DataFrame(rows), order)


def _hybrid_excitation(batch: TrialBatch, hybrid: HybridResult, removed: Sequence[str],
                       ) -> np.ndarray:
    """Calibration excitations of a hybrid result: recorded rows, synthesised rows (clipped)."""
    mask = np.isin(batch.mtu_names, list(removed))[None, :, None]
    synth = np.einsum("ms,tsn->tmn", hybrid.weightings, hybrid.primitives).clip(0.0, 1.0)
    return np.where(mask, synth, batch.excitation.numpy())


def _row(n_removed: int, removed: Sequence[str], method: str, objective: Objective,
         p: np.ndarray, reference: np.ndarray, validation: TrialBatch | None,
         n_synergies: int | None) -> dict[str, object]:
    row: dict[str, object] = {
        "n_removed": n_removed,
        "n_recorded": len(objective.data.mtu_names) - n_removed,
        "method": method,
        "removed": ",".join(removed),
        "n_synergies": n_synergies if n_synergies is not None else "",
        **_scores(objective, p, objective.data, "calibration"),
        "parameter_difference": parameter_difference(objective.spec, p, reference),
    }
    if validation is not None:
        row.update(_scores(objective, p, validation, "validation"))
    return row


def plot_channel_removal(table: pd.DataFrame, path: str | Path) -> Path:
    """Fig. 5-like figure: RMSE, R² and parameter difference vs recorded channels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.fileio import atomic_path

    prefix = "validation" if "validation_rmse_nm" in table else "calibration"
    panels = ((f"{prefix}_rmse_nm", "RMSE (N·m)"), (f"{prefix}_r2", "R²"),
              ("parameter_difference", "mean normalised\nparameter difference"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    reference = table[table["method"] == "reference"]
    for ax, (column, label) in zip(axes, panels, strict=True):
        for method, style in zip(METHODS, ("o-", "s-"), strict=True):
            part = table[table["method"] == method]
            ax.plot(part["n_recorded"], part[column], style, label=method.replace("_", "-"))
        if not reference.empty and column != "parameter_difference":
            ax.axhline(float(reference[column].iloc[0]), color="0.5", ls="--", lw=1,
                       label="all channels")
        ax.set_xlabel("recorded excitations")
        ax.set_ylabel(label)
        ax.invert_xaxis()
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Channel removal ({prefix} trials)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
