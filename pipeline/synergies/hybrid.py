"""Synergy-hybrid calibration (paper 002, section III-C, eq. 5).

Primitives ``H`` ``(trial, synergy, time)``, weightings ``W`` ``(muscle, synergy)`` of every
modelled MTU and the NMS parameters are optimised together:

* initial ``W_rec`` and ``H`` come from NMF of the recorded excitations
  (:func:`~pipeline.synergies.nmf.extract_synergies`); the rows ``W_unrec`` of the unrecorded MTUs
  start uniform random in [0, 1) (seeded);
* recorded excitations drive their own MTUs; synthesised ``W_unrec @ H`` drive the unrecorded ones;
* loss = the moment tracking and fibre-length / tendon-strain penalties of
  :class:`~pipeline.calibrate.losses.Objective` (eq. 4) + ``w_e`` mean (e_rec - W_rec H)² +
  ``w_s`` mean (W_unrec H)² + eq. 4 penalties keeping ``W``, ``H`` and the synthesised excitations
  in [0, 1].

The optimiser is :func:`pipeline.calibrate.gradient.calibrate_gradient` (AdamW, decaying learning
rate, early stopping) run on :class:`SynergySpec`, an adapter that appends the synergy variables to
the NMS parameter vector. NMS parameters keep their bounded sigmoid map; synergy variables are
unbounded (``physical = SYNERGY_STEP_SCALE * z``) and held in [0, 1] by the penalties, as in the
paper.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.activation_pairs import off_the_fold
from pipeline.calibrate.gradient import GradientOptions, GradientResult, calibrate_gradient
from pipeline.calibrate.losses import Objective
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.errors import CalibrationError, ConfigError, describe
from pipeline.synergies.nmf import Synergies, extract_synergies
from pipeline.synergies.terms import (
    excitation_loss,
    merge_excitations,
    reconstruct,
    synergy_penalty,
)

log = logging.getLogger(__name__)

__all__ = ["HybridOptions", "HybridResult", "SynergySpec", "calibrate_synergy_hybrid",
           "split_recorded"]

#: Physical change of a weighting or primitive per unit of its unconstrained variable; 0.25 gives
#: synergy variables about the step size (per unit of range) of the sigmoid-mapped NMS parameters.
SYNERGY_STEP_SCALE = 0.25


@dataclass(frozen=True)
class HybridOptions:
    """The ``synergies:`` config section plus the [0, 1] penalty weight."""

    vaf_threshold: float = 0.85
    n_synergies: int | None = None
    restarts: int = 5
    reconstruction_weight: float = 1.0  #: w_e
    synthesis_weight: float = 0.01  #: w_s
    penalty_weight: float = 100.0  #: eq. 4 weight keeping W, H and synthesised e in [0, 1]
    adamw_iterations: int = 150  #: AdamW iterations before the L-BFGS polish
    polish_evaluations: int = 350  #: objective evaluations of the preconditioned L-BFGS polish
    seed: int = 0

    @classmethod
    def from_config(cls, synergies_cfg: Mapping[str, Any], **overrides: Any) -> HybridOptions:
        keys = ("vaf_threshold", "n_synergies", "restarts", "reconstruction_weight",
                "synthesis_weight", "penalty_weight", "adamw_iterations", "polish_evaluations")
        return cls(**{**{k: synergies_cfg[k] for k in keys if k in synergies_cfg}, **overrides})

    def gradient_options(self, optimiser_cfg: Mapping[str, Any], **overrides: Any,
                         ) -> GradientOptions:
        """``calibration.optimiser`` (learning rate, decay, early stopping) with this
        calibration's own iteration counts."""
        return GradientOptions.from_config(
            dict(optimiser_cfg), **{"max_iterations": self.adamw_iterations,
                                    "polish_iterations": self.polish_evaluations, **overrides})


@dataclass(frozen=True)
class HybridResult:
    """Calibrated NMS parameters and synergies. Arrays are numpy, float64."""

    p: np.ndarray  #: free NMS parameters (spec order, physical units)
    weightings: np.ndarray  #: (muscle, synergy), rows in ``mtu_names`` order
    primitives: np.ndarray  #: (trial, synergy, time), padded like the batch
    mtu_names: tuple[str, ...]
    recorded: tuple[str, ...]
    unrecorded: tuple[str, ...]
    initial_synergies: Synergies  #: NMF of the recorded excitations
    initial_weightings: np.ndarray  #: (muscle, synergy) at the start (random unrecorded rows)
    gradient: GradientResult
    loss_terms: dict[str, float]  #: breakdown of the final loss

    @property
    def n_synergies(self) -> int:
        return int(self.weightings.shape[1])

    def unrecorded_weightings(self) -> np.ndarray:
        return self.weightings[[self.mtu_names.index(m) for m in self.unrecorded]]

    def synthesised(self) -> np.ndarray:
        """Synthesised excitations of the unrecorded MTUs ``(trial, unrecorded, time)``."""
        return np.einsum("ms,tsn->tmn", self.unrecorded_weightings(), self.primitives)


def split_recorded(mtu_names: Sequence[str], unrecorded: Sequence[str], *,
                   source: str = "config.yaml") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(recorded, unrecorded)`` in model order; refuse unknown names and an empty recorded set."""
    unknown = [m for m in unrecorded if m not in mtu_names]
    if unknown:
        raise ConfigError(describe(
            source, f"unrecorded MTU(s) {', '.join(map(repr, unknown))} are not in the model "
            f"(its MTUs: {', '.join(mtu_names)})",
            "spell models.<model>.unrecorded exactly like the MTU names of the model"))
    unrec = tuple(m for m in mtu_names if m in set(unrecorded))
    rec = tuple(m for m in mtu_names if m not in set(unrecorded))
    if not rec:
        raise CalibrationError(describe(
            source, "no recorded EMG channel: every modelled MTU is marked unrecorded",
            "keep at least one MTU with recorded EMG (remove it from models.<model>.unrecorded); "
            "synergies are extracted from recorded excitations"))
    return rec, unrec


class SynergySpec:
    """Adapter: NMS free parameters followed by ``W`` (row-major) and ``H`` (row-major).

    Duck-types the parts of :class:`~pipeline.calibrate.spec.ParameterSpec` that
    :func:`~pipeline.calibrate.gradient.calibrate_gradient` uses (``initial``,
    ``to_unconstrained``, ``to_physical``).
    """

    def __init__(self, spec: ParameterSpec, weightings0: np.ndarray, primitives0: np.ndarray,
                 ) -> None:
        self.spec = spec
        self.n_free = spec.n_free
        self.w_shape = tuple(weightings0.shape)
        self.h_shape = tuple(primitives0.shape)
        self.initial = np.concatenate([spec.initial, weightings0.ravel(), primitives0.ravel()])

    def with_p0(self, p0: np.ndarray) -> SynergySpec:
        """A copy whose NMS part starts at ``p0`` (synergy part unchanged)."""
        n_w = int(np.prod(self.w_shape))
        rest = self.initial[self.n_free:]
        return SynergySpec(self.spec.with_initial(p0), rest[:n_w].reshape(self.w_shape),
                           rest[n_w:].reshape(self.h_shape))

    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.spec.to_physical(z[:self.n_free]),
                          z[self.n_free:] * SYNERGY_STEP_SCALE])

    def to_unconstrained(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x_t = torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64)
        return torch.cat([self.spec.to_unconstrained(x_t[:self.n_free]),
                          x_t[self.n_free:] / SYNERGY_STEP_SCALE])

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n_w = int(np.prod(self.w_shape))
        return (x[:self.n_free], x[self.n_free:self.n_free + n_w].reshape(self.w_shape),
                x[self.n_free + n_w:].reshape(self.h_shape))


class HybridObjective:
    """Eq. 5 on the joint vector ``x = [p, W, H]`` (see :class:`SynergySpec`)."""

    def __init__(self, objective: Objective, layout: SynergySpec, recorded_mask: np.ndarray,
                 options: HybridOptions) -> None:
        self.objective = objective
        self.layout = layout
        self.mask = torch.as_tensor(recorded_mask, dtype=torch.bool)
        self.options = options
        self.recorded = objective.data.excitation[:, self.mask]
        self.time_weights = objective.time_weights

    def excitations(self, w: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(reconstructed_recorded, synthesised_unrecorded, driving)`` excitations."""
        full = reconstruct(w, h)
        driving = merge_excitations(self.objective.data.excitation, full, self.mask)
        return full[:, self.mask], full[:, ~self.mask], driving

    def breakdown(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        p, w, h = self.layout.split(x)
        recon, synth, driving = self.excitations(w, h)
        data = dataclasses.replace(self.objective.data, excitation=driving)
        base = self.objective.terms_from_output(self.objective.simulate(p, data), p)
        opts = self.options
        exc = excitation_loss(self.recorded, recon, synth,
                              reconstruction_weight=opts.reconstruction_weight,
                              synthesis_weight=opts.synthesis_weight,
                              time_weights=self.time_weights)
        box = synergy_penalty(w, h, synth, weight=opts.penalty_weight,
                              time_weights=self.time_weights)
        return {"total": base.total + exc + box, "tracking": base.tracking,
                "nms_penalty": base.penalty, "excitation": exc, "synergy_penalty": box}

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        terms = self.breakdown(x)
        total, tracking = terms["total"], terms["tracking"].detach()
        return total, tracking, total.detach() - tracking


def polish_metric(layout: SynergySpec, recorded_mask: np.ndarray, options: HybridOptions,
                  time_weights: torch.Tensor | None) -> torch.Tensor:
    """Diagonal preconditioner of the L-BFGS polish: each primitive sample's variable scaled
    like the weightings.

    A primitive sample ``H[t, s, n]`` enters a handful of residuals (its trial and time), a
    weighting ``W[m, s]`` every sample of every trial, so the excitation term's curvature in
    ``W`` is about ``Σ_{t,n} tw H[t,s,n]²`` against ``tw[t,n] Σ_m W[m,s]²`` in ``H`` (``tw`` the
    time weights), roughly the number of samples apart. The metric of ``H[t, s, n]`` is the ratio
    of the recorded weightings' Gauss-Newton curvature to the primitive sample's, at the start;
    the NMS parameters and the weightings keep 1.
    """
    _, w_t, h_t = layout.split(torch.as_tensor(layout.initial, dtype=torch.float64))
    w, h = w_t.numpy(), h_t.numpy()
    n_trial, _, n_time = layout.h_shape
    tw = (np.full((n_trial, n_time), 1.0 / n_time) if time_weights is None
          else time_weights.detach().cpu().numpy())
    mask = np.asarray(recorded_mask, dtype=bool)
    per_rec = options.reconstruction_weight / max(int(mask.sum()), 1)
    per_unrec = options.synthesis_weight / max(int((~mask).sum()), 1)
    weighting_curvature = per_rec * np.einsum("tn,tsn->s", tw, h * h)  # (synergy,)
    row_weight = per_rec * (w[mask] ** 2).sum(0) + per_unrec * (w[~mask] ** 2).sum(0)
    sample_curvature = tw[:, None, :] * row_weight[None, :, None]  # (trial, synergy, time)
    valid = sample_curvature > 0
    ratio = np.ones(layout.h_shape)
    ratio[valid] = (np.broadcast_to(weighting_curvature[None, :, None], layout.h_shape)[valid]
                    / sample_curvature[valid])
    ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)
    return torch.as_tensor(np.concatenate([np.ones(layout.n_free + w.size), ratio.ravel()]),
                           dtype=torch.float64)


def _pad_primitives(synergies: Synergies, n_time: int) -> np.ndarray:
    return np.stack([np.pad(h, [(0, 0), (0, n_time - h.shape[1])], mode="edge")
                     for h in synergies.primitives])


def initial_synergies(data: TrialBatch, recorded: Sequence[str], *, options: HybridOptions,
                      ) -> tuple[Synergies, np.ndarray, np.ndarray]:
    """NMF of the recorded channels and the full initial ``(W, H)`` (unrecorded rows random)."""
    rec_idx = [data.mtu_names.index(m) for m in recorded]
    lengths = data.lengths()
    excitations = [data.excitation[k, rec_idx, :n].numpy() for k, n in enumerate(lengths)]
    synergies = extract_synergies(excitations, muscle_names=recorded,
                                  vaf_threshold=options.vaf_threshold,
                                  n_synergies=options.n_synergies, restarts=options.restarts,
                                  seed=options.seed)
    rng = np.random.default_rng(options.seed)
    w0 = rng.uniform(0.0, 1.0, (len(data.mtu_names), synergies.n_synergies))
    w0[rec_idx] = synergies.weightings
    h0 = _pad_primitives(synergies, data.excitation.shape[2])
    return synergies, w0, h0


def calibrate_synergy_hybrid(
    objective: Objective,
    /,
    *,
    unrecorded: Sequence[str],
    options: HybridOptions | None = None,
    gradient_options: GradientOptions | None = None,
    p0: np.ndarray | None = None,
) -> HybridResult:
    """Calibrate NMS parameters, weightings and primitives together (module docstring).

    ``objective`` is the EMG-driven objective over every modelled MTU (recorded and unrecorded,
    the unrecorded rows of its excitations are ignored). ``unrecorded`` names the MTUs driven by
    synthesised excitations.

    Raises:
        ConfigError: an unrecorded name not in the model; more synergies than recorded channels.
        CalibrationError: no recorded channel; a non-finite loss the optimiser cannot recover.
    """
    opts = options or HybridOptions()
    data = objective.data
    recorded, unrec = split_recorded(data.mtu_names, unrecorded)
    mask = np.array([m in set(recorded) for m in data.mtu_names])
    synergies, w0, h0 = initial_synergies(data, recorded, options=opts)
    layout = SynergySpec(objective.spec, w0, h0).with_p0(off_the_fold(
        objective.spec, objective.spec.initial if p0 is None else p0))
    hybrid = HybridObjective(objective, layout, mask, opts)
    log.info("synergy-hybrid calibration: %d synergies (VAF %.3f), %d recorded, %d synthesised "
             "(%s)", synergies.n_synergies, synergies.vaf, len(recorded), len(unrec),
             ", ".join(unrec) or "none")
    # SynergySpec duck-types the three members of ParameterSpec that calibrate_gradient uses.
    result = calibrate_gradient(hybrid, layout,  # type: ignore[arg-type]
                                options=gradient_options, seed=opts.seed,
                                polish_metric=polish_metric(layout, mask, opts,
                                                            objective.time_weights))
    x = torch.as_tensor(result.p, dtype=torch.float64)
    with torch.no_grad():
        terms = {k: float(v) for k, v in hybrid.breakdown(x).items()}
    p, w, h = (t.numpy().copy() for t in layout.split(x))
    log.info("synergy-hybrid loss terms: %s", {k: f"{v:.4g}" for k, v in terms.items()})
    return HybridResult(p=p, weightings=w, primitives=h, mtu_names=data.mtu_names,
                        recorded=recorded, unrecorded=unrec, initial_synergies=synergies,
                        initial_weightings=w0, gradient=result, loss_terms=terms)
