"""Differentiable pieces of synergy-hybrid calibration (paper 002, eq. 5), torch.

Shapes: weightings ``(muscle, synergy)``; primitives ``(trial, synergy, time)``; excitations
``(trial, muscle, time)``; ``time_weights`` ``(trial, time)`` (``1/N_i`` on valid samples and 0
on padding, :attr:`pipeline.calibrate.losses.Objective.time_weights`), so every time-dependent
term is ``Σ_trials mean_time`` like the moment-tracking term of eq. 5. Everything runs in the
dtype and on the device of its inputs.
"""

from __future__ import annotations

import torch

from pipeline.calibrate.losses import range_penalty

__all__ = ["excitation_loss", "merge_excitations", "reconstruct", "synergy_penalty"]


def reconstruct(weightings: torch.Tensor, primitives: torch.Tensor, /) -> torch.Tensor:
    """Synergy excitations ``W @ H``: ``(muscle, synergy)`` x ``(trial, synergy, time)``.

    Returns ``(trial, muscle, time)``; differentiable w.r.t. both factors.
    """
    if weightings.ndim != 2 or primitives.ndim != 3 or (
        weightings.shape[1] != primitives.shape[1]
    ):
        raise ValueError(f"weightings (muscle, synergy) {tuple(weightings.shape)} and primitives "
                         f"(trial, synergy, time) {tuple(primitives.shape)} do not match")
    return torch.einsum("ms,tsn->tmn", weightings, primitives)


def merge_excitations(recorded: torch.Tensor, synthesised: torch.Tensor,
                      recorded_mask: torch.Tensor, /) -> torch.Tensor:
    """Excitations driving the model: recorded rows where ``recorded_mask``, synthesised elsewhere.

    ``recorded`` and ``synthesised`` are ``(trial, muscle, time)`` (NaN allowed in the rows that
    are not used); ``recorded_mask`` is ``(muscle,)`` bool.
    """
    mask = recorded_mask.to(device=recorded.device).view(1, -1, 1)
    return torch.where(mask, torch.nan_to_num(recorded, nan=0.0), synthesised)


def _over_time(values: torch.Tensor, time_weights: torch.Tensor | None) -> torch.Tensor:
    """``(trial, time)`` values -> ``Σ_trials mean_time`` (plain mean without weights)."""
    if time_weights is None:
        return values.mean()
    return (values * time_weights).sum()


def excitation_loss(
    recorded: torch.Tensor,
    reconstructed: torch.Tensor,
    synthesised: torch.Tensor,
    /,
    *,
    reconstruction_weight: float,
    synthesis_weight: float,
    time_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F_exc`` of eq. 5: ``w_e mean_r (e_rec - e_recon)² + w_s mean_s e_synth²`` per sample.

    ``recorded`` and ``reconstructed`` are the recorded channels ``(trial, n_recorded, time)``,
    ``synthesised`` the unrecorded ones ``(trial, n_synthesised, time)`` (either may have zero
    rows). Summed over trials and averaged over time with ``time_weights`` (else a plain mean).
    """
    per_sample = recorded.new_zeros(recorded.shape[0], recorded.shape[2])
    if recorded.shape[1]:
        per_sample = per_sample + reconstruction_weight * ((recorded - reconstructed) ** 2).mean(1)
    if synthesised.shape[1]:
        per_sample = per_sample + synthesis_weight * (synthesised**2).mean(1)
    return _over_time(per_sample, time_weights)


def synergy_penalty(
    weightings: torch.Tensor,
    primitives: torch.Tensor,
    synthesised: torch.Tensor,
    /,
    *,
    weight: float,
    time_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 4 penalties keeping weightings, primitives and synthesised excitations in [0, 1].

    Time-dependent penalties are summed over rows, then over trials and averaged over time (like
    the fibre-length penalty of :class:`~pipeline.calibrate.losses.Objective`); the weightings'
    penalty is summed over all entries.
    """
    def box(x: torch.Tensor) -> torch.Tensor:
        return range_penalty(x, lower=0.0, upper=1.0, weight=weight)

    per_sample = box(primitives).sum(1)
    if synthesised.shape[1]:
        per_sample = per_sample + box(synthesised).sum(1)
    return _over_time(per_sample, time_weights) + box(weightings).sum()
