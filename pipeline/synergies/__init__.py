"""Muscle synergies: NMF extraction, synergy-hybrid calibration, validation, channel removal.

Public API (paper 002, section III-C; shapes: weightings ``(muscle, synergy)``, primitives
``(trial, synergy, time)``, excitations ``(trial, muscle, time)``):

* :func:`extract_synergies`, :func:`nmf`, :func:`fit_primitives`, :func:`vaf`,
  :func:`vaf_per_muscle` - Lee-Seung NMF, VAF rule (:mod:`pipeline.synergies.nmf`);
* :func:`plot_synergies` - primitives per trial and weightings bars;
* :func:`reconstruct`, :func:`excitation_loss`, :func:`synergy_penalty` - eq. 5 terms (torch);
* :func:`calibrate_synergy_hybrid`, :class:`HybridOptions`, :class:`HybridResult` - joint
  calibration of NMS parameters, weightings and primitives on the gradient optimiser;
* :func:`synthesise_unrecorded`, :func:`evaluate` - validation trials (primitives fitted with the
  weightings fixed, unrecorded = ``W_unrec @ H``, open-loop execution);
* :func:`run_synergy_hybrid` - the ``calibrate-synergy`` command (files in, outputs contract out);
* :func:`run_channel_removal`, :func:`plot_channel_removal` - paper 002's Fig. 5 experiment;
* :func:`make_synergy_problem` - a synthetic problem driven by known synergies.
"""

from pipeline.synergies.channel_removal import plot_channel_removal, run_channel_removal
from pipeline.synergies.figures import plot_synergies
from pipeline.synergies.hybrid import HybridOptions, HybridResult, calibrate_synergy_hybrid
from pipeline.synergies.nmf import (
    NMFResult,
    Synergies,
    extract_synergies,
    fit_primitives,
    nmf,
    vaf,
    vaf_per_muscle,
)
from pipeline.synergies.run import run_synergy_hybrid
from pipeline.synergies.synthetic import make_synergy_problem
from pipeline.synergies.terms import excitation_loss, reconstruct, synergy_penalty
from pipeline.synergies.validation import evaluate, synthesise_unrecorded

__all__ = [
    "HybridOptions",
    "HybridResult",
    "NMFResult",
    "Synergies",
    "calibrate_synergy_hybrid",
    "evaluate",
    "excitation_loss",
    "extract_synergies",
    "fit_primitives",
    "make_synergy_problem",
    "nmf",
    "plot_channel_removal",
    "plot_synergies",
    "reconstruct",
    "run_channel_removal",
    "run_synergy_hybrid",
    "synergy_penalty",
    "synthesise_unrecorded",
    "vaf",
    "vaf_per_muscle",
]
